//! Writes: create, replace, merge patch, server-side apply with field
//! ownership per manager, and delete.

use super::*;

pub(super) enum Write {
    Create,
    Replace,
    Patch,
}

fn leaves(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Leaf fields of an object a manager can own (identity and server-set
/// metadata excluded).
fn owned_fields(v: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    leaves(v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        let top = p.first().map(String::as_str);
        let meta = p.get(1).map(String::as_str);
        !(matches!(top, Some("apiVersion" | "kind" | "status"))
            || (top == Some("metadata")
                && matches!(
                    meta,
                    Some(
                        "name"
                            | "namespace"
                            | "uid"
                            | "resourceVersion"
                            | "creationTimestamp"
                            | "managedFields"
                            | "generation"
                    )
                )))
    });
    out
}

fn get_path<'a>(v: &'a Value, p: &FieldPath) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, k| cur.get(k))
}

fn set_path(v: &mut Value, p: &FieldPath, val: Value) {
    let mut cur = v;
    for (i, k) in p.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let m = cur.as_object_mut().expect("object");
        if i == p.len() - 1 {
            m.insert(k.clone(), val);
            return;
        }
        cur = m.entry(k.clone()).or_insert_with(|| json!({}));
    }
}

fn remove_path(v: &mut Value, p: &FieldPath) {
    fn rec(cur: &mut Value, p: &[String]) {
        let Some(m) = cur.as_object_mut() else { return };
        if p.len() == 1 {
            m.remove(&p[0]);
            return;
        }
        if let Some(child) = m.get_mut(&p[0]) {
            rec(child, &p[1..]);
            if child.as_object().is_some_and(|c| c.is_empty()) && p[0] != "metadata" {
                m.remove(&p[0]);
            }
        }
    }
    rec(v, p);
}

/// Two field paths overlap when one is a prefix of the other.
fn overlaps(a: &FieldPath, b: &FieldPath) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

pub(super) fn write(
    s: &Shared,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    kind: Write,
) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let manager = q
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| "unknown".to_string());
    let force = q.get("force").is_some_and(|f| f == "true");
    // apply-patch+yaml bodies from kube-rs are JSON, which is YAML.
    let input: Value = if ct.contains("yaml") {
        match serde_yaml::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return status(400, "BadRequest", format!("bad yaml: {e}")),
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return status(400, "BadRequest", format!("bad json: {e}")),
        }
    };
    let name = match (
        &t.name,
        input.pointer("/metadata/name").and_then(Value::as_str),
    ) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => n.to_string(),
        (None, None) => return status(422, "Invalid", "metadata.name is required"),
    };
    if let Some(body_name) = input.pointer("/metadata/name").and_then(Value::as_str)
        && body_name != name
    {
        return status(400, "BadRequest", "name in body does not match the URL");
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let key = (ns.clone(), name.clone());
    let mut st = s.store.lock().unwrap();
    let existing = st.objects.get(&t.res()).and_then(|m| m.get(&key)).cloned();
    let previous = existing.clone();
    let result: Result<Stored, Response> = match kind {
        Write::Create => match existing {
            Some(_) => Err(status(
                409,
                "AlreadyExists",
                format!("{} {name} already exists", t.plural),
            )),
            None => Ok(Stored {
                managers: BTreeMap::from([(manager.clone(), owned_fields(&input))]),
                value: input,
            }),
        },
        Write::Replace => match existing {
            None => Err(status(
                404,
                "NotFound",
                format!("{} {name} not found", t.plural),
            )),
            Some(old) => {
                let want_rv = input
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let have_rv = old
                    .value
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !want_rv.is_empty() && want_rv != have_rv {
                    Err(status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ))
                } else {
                    Ok(take_changed(old, input, &manager))
                }
            }
        },
        Write::Patch if ct.starts_with("application/apply-patch") => {
            server_side_apply(existing, input, &manager, force)
        }
        Write::Patch => match existing {
            None => Err(status(
                404,
                "NotFound",
                format!("{} {name} not found", t.plural),
            )),
            Some(old) => {
                let mut new = old.value.clone();
                merge_patch(&mut new, &input);
                Ok(take_changed(old, new, &manager))
            }
        },
    };
    let mut stored = match result {
        Ok(s) => s,
        Err(r) => return r,
    };
    st.rv += 1;
    let rv = st.rv;
    let existing = previous;
    let created = existing.is_none();
    let uid = existing
        .as_ref()
        .and_then(|e| e.value.pointer("/metadata/uid").cloned())
        .unwrap_or_else(|| Value::String(uuid::Uuid::new_v4().to_string()));
    let created_at = existing
        .as_ref()
        .and_then(|e| e.value.pointer("/metadata/creationTimestamp").cloned())
        .unwrap_or_else(|| {
            Value::String(
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            )
        });
    {
        let v = &mut stored.value;
        if !v.is_object() {
            *v = json!({});
        }
        v["apiVersion"] = Value::String(t.api_version());
        v["kind"] = Value::String(t.kind());
        if !v["metadata"].is_object() {
            v["metadata"] = json!({});
        }
        let m = &mut v["metadata"];
        m["name"] = Value::String(name.clone());
        if !ns.is_empty() {
            m["namespace"] = Value::String(ns.clone());
        }
        m["uid"] = uid;
        m["resourceVersion"] = Value::String(rv.to_string());
        m["creationTimestamp"] = created_at;
        m["managedFields"] = Value::Array(
            stored
                .managers
                .keys()
                .map(|mgr| json!({"manager": mgr, "operation": "Apply", "apiVersion": t.api_version(), "fieldsType": "FieldsV1"}))
                .collect(),
        );
    }
    let value = stored.value.clone();
    st.objects.entry(t.res()).or_default().insert(key, stored);
    let ev = Event {
        rv,
        res: t.res(),
        namespace: ns,
        old: existing.map(|e| e.value),
        new: Some(value.clone()),
    };
    push_event(s, &mut st, ev);
    ok_json(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &value,
    )
}

/// A non-apply write: the writer takes every field whose value changed.
fn take_changed(old: Stored, new: Value, manager: &str) -> Stored {
    let before = owned_fields(&old.value);
    let after = owned_fields(&new);
    let changed: BTreeSet<FieldPath> = after
        .iter()
        .filter(|p| !before.contains(*p) || get_path(&old.value, p) != get_path(&new, p))
        .cloned()
        .collect();
    let mut managers = old.managers;
    for fields in managers.values_mut() {
        fields.retain(|p| after.contains(p) && !changed.iter().any(|c| overlaps(c, p)));
    }
    managers
        .entry(manager.to_string())
        .or_default()
        .extend(changed);
    managers.retain(|_, f| !f.is_empty());
    Stored {
        value: new,
        managers,
    }
}

/// Server-side apply of `applied` by `manager`. The error is the ready
/// HTTP answer (409); its size does not matter in a test double.
#[allow(clippy::result_large_err)]
fn server_side_apply(
    existing: Option<Stored>,
    applied: Value,
    manager: &str,
    force: bool,
) -> Result<Stored, Response> {
    let fields = owned_fields(&applied);
    let Some(old) = existing else {
        return Ok(Stored {
            managers: BTreeMap::from([(manager.to_string(), fields)]),
            value: applied,
        });
    };
    let mut managers = old.managers.clone();
    // Conflicts: a field another manager owns, applied with another value.
    let mut conflicts = Vec::new();
    for (other, owned) in &managers {
        if other == manager {
            continue;
        }
        for p in owned {
            if fields.iter().any(|f| overlaps(f, p)) {
                let differs = fields
                    .iter()
                    .filter(|f| overlaps(f, p))
                    .any(|f| get_path(&old.value, f) != get_path(&applied, f));
                if differs {
                    conflicts.push(format!("{} owned by {other}", p.join(".")));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(status(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                conflicts.join(", ")
            ),
        ));
    }
    // Fields this manager no longer applies and nobody else owns go away.
    let previously = managers.remove(manager).unwrap_or_default();
    let mut value = old.value.clone();
    for p in previously.difference(&fields) {
        let owned_by_other = managers.values().any(|o| o.iter().any(|q| overlaps(q, p)));
        if !owned_by_other {
            remove_path(&mut value, p);
        }
    }
    // Others lose what this apply takes (with force) or shares (same value).
    for owned in managers.values_mut() {
        owned.retain(|p| !fields.iter().any(|f| overlaps(f, p)));
    }
    for f in &fields {
        if let Some(v) = get_path(&applied, f) {
            set_path(&mut value, f, v.clone());
        }
    }
    managers.insert(manager.to_string(), fields);
    managers.retain(|_, f| !f.is_empty());
    Ok(Stored { value, managers })
}

pub(super) fn delete(s: &Shared, t: &Target) -> Response {
    let ns = t.namespace.clone().unwrap_or_default();
    let Some(name) = t.name.clone() else {
        return status(
            405,
            "MethodNotAllowed",
            "collection delete is not supported",
        );
    };
    let mut st = s.store.lock().unwrap();
    let removed = st
        .objects
        .get_mut(&t.res())
        .and_then(|m| m.remove(&(ns.clone(), name.clone())));
    let Some(old) = removed else {
        return status(404, "NotFound", format!("{} {name} not found", t.plural));
    };
    st.rv += 1;
    let rv = st.rv;
    let mut gone = old.value.clone();
    gone["metadata"]["resourceVersion"] = Value::String(rv.to_string());
    let ev = Event {
        rv,
        res: t.res(),
        namespace: ns,
        old: Some(gone.clone()),
        new: None,
    };
    push_event(s, &mut st, ev);
    ok_json(StatusCode::OK, &gone)
}

fn push_event(s: &Shared, st: &mut Store, ev: Event) {
    st.log.push_back(ev.clone());
    while st.log.len() > s.log_cap {
        if let Some(e) = st.log.pop_front() {
            st.compacted = st.compacted.max(e.rv);
        }
    }
    let _ = s.events.send(Arc::new(ev));
}

#[cfg(test)]
mod tests {
    // Unused when a bench (harness = false) includes this file.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying_and_keeps_others() {
        let first = server_side_apply(
            None,
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            "gate",
            false,
        )
        .unwrap();
        let edited = take_changed(
            first.clone(),
            json!({"metadata": {"labels": {"a": "1", "b": "2", "c": "3"}}}),
            "human",
        );
        let second = server_side_apply(
            Some(edited),
            json!({"metadata": {"labels": {"a": "1"}}}),
            "gate",
            false,
        )
        .unwrap();
        assert_eq!(
            second.value,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}})
        );
    }

    #[test]
    fn apply_conflicts_without_force() {
        let first = server_side_apply(None, json!({"spec": {"x": 1}}), "gate", false).unwrap();
        let edited = take_changed(first, json!({"spec": {"x": 2}}), "human");
        assert!(
            server_side_apply(
                Some(edited.clone()),
                json!({"spec": {"x": 1}}),
                "gate",
                false
            )
            .is_err()
        );
        let forced =
            server_side_apply(Some(edited), json!({"spec": {"x": 1}}), "gate", true).unwrap();
        assert_eq!(forced.value, json!({"spec": {"x": 1}}));
        assert!(!forced.managers.contains_key("human"));
    }
}
