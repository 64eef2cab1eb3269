//! Watch: replaying the event log from a resourceVersion, then live
//! events, bookmarks, 410 Gone and dropped connections.

use super::*;

fn watch_line(kind: &str, obj: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": obj}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The event as this watch (namespace, selector) sees it, if at all.
fn view(ev: &Event, t: &Target, sel: Option<&String>) -> Option<Bytes> {
    if ev.res != t.res() {
        return None;
    }
    if let Some(ns) = &t.namespace
        && &ev.namespace != ns
    {
        return None;
    }
    let was = ev.old.as_ref().is_some_and(|o| matches_selector(sel, o));
    let is = ev.new.as_ref().is_some_and(|n| matches_selector(sel, n));
    match (was, is, &ev.new) {
        (false, true, Some(n)) => Some(watch_line("ADDED", n)),
        (true, true, Some(n)) => Some(watch_line("MODIFIED", n)),
        // Deleted, or no longer matching the selector.
        (true, false, Some(n)) => Some(watch_line("DELETED", n)),
        (true, false, None) => ev.old.as_ref().map(|o| watch_line("DELETED", o)),
        _ => None,
    }
}

pub(super) fn watch_stream(s: Arc<Shared>, t: Target, q: HashMap<String, String>) -> Response {
    let sel = q.get("labelSelector").cloned();
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let from: Option<u64> = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1024);
    let mut drops = s.drop_watches.subscribe();
    drops.borrow_and_update();
    // Under the lock: the backlog, and a subscription that starts exactly
    // after it (events are broadcast while the lock is held).
    let (backlog, mut live, mut last_rv, gone) = {
        let st = s.store.lock().unwrap();
        let live = s.events.subscribe();
        match from {
            Some(rv) if rv < st.compacted => (Vec::new(), live, st.rv, true),
            Some(rv) => {
                let b: Vec<Bytes> = st
                    .log
                    .iter()
                    .filter(|e| e.rv > rv)
                    .filter_map(|e| view(e, &t, sel.as_ref()))
                    .collect();
                (b, live, st.rv, false)
            }
            None => {
                // No version: current objects as ADDED, then changes.
                let b: Vec<Bytes> = st
                    .objects
                    .get(&t.res())
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| t.namespace.as_ref().is_none_or(|ns| &k.0 == ns))
                            .filter(|(_, o)| matches_selector(sel.as_ref(), &o.value))
                            .map(|(_, o)| watch_line("ADDED", &o.value))
                            .collect()
                    })
                    .unwrap_or_default();
                (b, live, st.rv, false)
            }
        }
    };
    let kind = t.kind();
    let api_version = t.api_version();
    let interval = s.bookmark_interval;
    tokio::spawn(async move {
        if gone {
            let err = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version", "reason": "Expired", "code": 410});
            let _ = tx.send(Ok(watch_line("ERROR", &err))).await;
            return;
        }
        for b in backlog {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                ev = live.recv() => match ev {
                    Ok(ev) => {
                        last_rv = last_rv.max(ev.rv);
                        if let Some(b) = view(&ev, &t, sel.as_ref())
                            && tx.send(Ok(b)).await.is_err() {
                            return;
                        }
                    }
                    // Too slow a reader: like the real server, end the watch.
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let bm = json!({"kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(Ok(watch_line("BOOKMARK", &bm))).await.is_err() {
                        return;
                    }
                }
                _ = drops.changed() => return,
                _ = &mut deadline => return,
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}
