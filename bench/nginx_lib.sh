# nginx as ingress-nginx renders a workspace Ingress, shared by
# bench/run.sh and bench/versus.sh (sourced, not run). Before calling
# `location`, set the auth service it checks with:
#   auth_addr      host:port of its HTTP listener
#   auth_upstream  name of an upstream block with keepalive towards it
#   auth_path      path and query of its check (auth-url)
#   auth_headers   the auth-response-headers to copy into the workspace's request
#   auth_signin    (optional) auth-signin: a 401 from the check becomes a
#                  302 there, with rd= the URL asked for
# Its defaults are the gate's, as the gate's Ingresses render them.
auth_headers="${auth_headers:-X-Workspace-User X-Workspace-User-Id X-Workspace-Id Cookie Authorization}"

# location NAME STYLE AUTH: a workspace location /NAME/ towards the
# upstream block `workspace`, and its auth subrequest location.
#   STYLE ingress: ingress-nginx's proxy headers, access log in its
#         upstreaminfo format; lean: no access log, only the check's headers.
#   AUTH none; kept (auth-keepalive: an upstream block, kept connections);
#        fresh (the default: the auth-url through a variable, a new
#        connection per check).
location() { # name, style (ingress|lean), auth (none|kept|fresh)
  local name="$1" style="$2" auth="$3" h i=0
  if [ "$auth" != none ]; then
    echo "    location = /_external-auth-$name {"
    echo "      internal;"
    echo "      access_log off;"
    echo "      proxy_pass_request_body off;"
    echo "      proxy_set_header Content-Length \"\";"
    if [ "$style" = ingress ]; then cat <<LOC
      proxy_set_header X-Forwarded-Proto "";
      proxy_set_header X-Request-ID \$req_id;
      proxy_set_header Host $auth_addr;
      proxy_set_header X-Original-URL \$scheme://\$http_host\$request_uri;
      proxy_set_header X-Original-Method \$request_method;
      proxy_set_header X-Sent-From "nginx-ingress-controller";
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Auth-Request-Redirect \$request_uri;
      proxy_buffering off;
      proxy_buffer_size 4k;
      proxy_buffers 4 4k;
      proxy_request_buffering on;
      proxy_pass_request_headers on;
      client_max_body_size 1m;
LOC
    else cat <<LOC
      proxy_set_header X-Original-URL \$scheme://\$http_host\$request_uri;
      proxy_set_header X-Original-Method \$request_method;
LOC
    fi
    echo "      proxy_http_version 1.1;"
    if [ "$auth" = kept ]; then
      # auth-keepalive: an upstream block with keepalive.
      echo "      proxy_set_header Connection \"\";"
      echo "      proxy_pass http://$auth_upstream$auth_path;"
    else
      # ingress-nginx's default: the auth-url through a variable.
      echo "      set \$target http://$auth_addr$auth_path;"
      echo "      proxy_pass \$target;"
    fi
    echo "    }"
  fi
  echo "    location /$name/ {"
  if [ "$auth" != none ]; then
    echo "      auth_request /_external-auth-$name;"
    if [ -n "${auth_signin:-}" ]; then echo "      error_page 401 = @signin-$name;"; fi
    if [ "$style" = ingress ]; then cat <<LOC
      auth_request_set \$auth_cookie \$upstream_http_set_cookie;
      add_header Set-Cookie \$auth_cookie;
LOC
      # auth-response-headers: each copied from the check's answer.
      for h in $auth_headers; do
        echo "      auth_request_set \$authHeader$i \$upstream_http_$(echo "$h" | tr 'A-Z-' 'a-z_');"
        echo "      proxy_set_header '$h' \$authHeader$i;"
        i=$((i + 1))
      done
    else cat <<LOC
      auth_request_set \$authHeader0 \$upstream_http_x_workspace_user;
      proxy_set_header X-Workspace-User \$authHeader0;
      auth_request_set \$authHeader1 \$upstream_http_cookie;
      proxy_set_header Cookie \$authHeader1;
LOC
    fi
  fi
  if [ "$style" = ingress ]; then cat <<LOC
      set \$proxy_upstream_name "ns-ws-1-60001";
      proxy_set_header Host \$best_http_host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Request-ID \$req_id;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Host \$best_http_host;
      proxy_set_header X-Forwarded-Port \$pass_server_port;
      proxy_set_header X-Forwarded-Proto \$pass_access_scheme;
      proxy_set_header X-Forwarded-Scheme \$pass_access_scheme;
      proxy_set_header X-Scheme \$pass_access_scheme;
      proxy_set_header X-Original-Forwarded-For \$http_x_forwarded_for;
      proxy_set_header Proxy "";
      proxy_connect_timeout 5s;
      proxy_send_timeout 60s;
      proxy_read_timeout 60s;
      proxy_buffering off;
      access_log $work/access.log upstreaminfo;
LOC
  else
    echo "      proxy_set_header Connection \"\";"
  fi
  echo "      proxy_http_version 1.1;"
  echo "      proxy_pass http://workspace/trivial;"
  echo "    }"
  if [ "$auth" != none ] && [ -n "${auth_signin:-}" ]; then
    echo "    location @signin-$name {"
    echo "      internal;"
    echo "      add_header Set-Cookie \$auth_cookie;"
    echo "      return 302 $auth_signin?rd=\$pass_access_scheme://\$http_host\$request_uri;"
    echo "    }"
  fi
}

# nginx_head DIR: the top of nginx.conf up to the opened http block, with
# ingress-nginx's log format and maps (nginx.tmpl, default configmap).
nginx_head() {
  cat <<NGINX
daemon off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy;
  fastcgi_temp_path $1/tmp/f; uwsgi_temp_path $1/tmp/u; scgi_temp_path $1/tmp/s;
  log_format upstreaminfo '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" \$request_length \$request_time [\$proxy_upstream_name] \$upstream_addr \$upstream_status \$req_id';
  map \$http_x_request_id \$req_id { default \$http_x_request_id; "" \$request_id; }
  map \$http_upgrade \$connection_upgrade { default upgrade; "" ""; }
  map "" \$pass_access_scheme { default \$scheme; }
  map "" \$pass_server_port { default \$server_port; }
  map \$http_host \$best_http_host { default \$http_host; "" \$host; }
NGINX
}
