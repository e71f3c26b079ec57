//! Container identity from a cgroup path: which engine made the cgroup and the
//! container's id, for the layouts of Docker (cgroupfs and systemd drivers),
//! containerd/CRI, CRI-O, Podman (cgroupfs `libpod_parent/libpod-<id>` and systemd
//! `libpod-<id>.scope`) and Kubernetes pods.

use super::{Engine, Identity};

/// Identifies the container a cgroup path belongs to, if any.
pub fn identify(path: &str) -> Option<Identity> {
    let mut pod = None;
    let mut found = None;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if let Some(uid) = pod_uid(part) {
            pod = Some(uid);
        }
        if let Some((runtime, id)) = component(part) {
            found = Some((runtime, id));
        }
    }
    // Docker's cgroupfs driver: /docker/<id>.
    if found.is_none() {
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        if parts.next() == Some("docker")
            && let Some(id) = parts.next()
            && is_id(id)
        {
            found = Some((Engine::Docker, id.to_owned()));
        }
    }
    found.map(|(runtime, id)| {
        let mut who = Identity::new(runtime, id);
        who.container.pod = pod;
        who
    })
}

/// Whether `path` is the container's own cgroup, not one nested in it.
pub fn is_own(path: &str, who: &Identity) -> bool {
    let id = &who.container.id;
    let path = path.trim_end_matches('/');
    path.ends_with(id.as_str()) || path.trim_end_matches(".scope").ends_with(id.as_str())
}

/// Why [`find_cgroup`] found no single container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindError {
    NotFound,
    /// The prefix matches several containers (their cgroup paths).
    Ambiguous(Vec<String>),
}

/// Finds the cgroup (path relative to `cgroup2`, the cgroup2 mount) of the container
/// whose id starts with `id`: the container's own cgroup, not cgroups nested in it.
pub fn find_cgroup(cgroup2: &std::path::Path, id: &str) -> Result<String, FindError> {
    let id = id.to_ascii_lowercase();
    let mut found: Vec<(String, String)> = Vec::new();
    for e in crate::host::cgroups::walk(cgroup2) {
        let Some(c) = identify(&e.path) else {
            continue;
        };
        if is_own(&e.path, &c) && !id.is_empty() && c.container.id.starts_with(&id) {
            found.push((c.container.id, e.path));
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    match found.len() {
        0 => Err(FindError::NotFound),
        1 => Ok(found.remove(0).1),
        _ => Err(FindError::Ambiguous(
            found.into_iter().map(|(_, p)| p).collect(),
        )),
    }
}

/// A systemd scope named after a runtime and a container id.
fn component(part: &str) -> Option<(Engine, String)> {
    let body = part.strip_suffix(".scope").unwrap_or(part);
    for (prefix, runtime) in [
        ("docker-", Engine::Docker),
        ("cri-containerd-", Engine::Containerd),
        ("crio-", Engine::CriO),
        ("libpod-", Engine::Podman),
    ] {
        if let Some(id) = body.strip_prefix(prefix)
            && is_id(id)
        {
            return Some((runtime, id.to_owned()));
        }
    }
    None
}

/// `kubepods-burstable-pod<uid>.slice` or `pod<uid>`.
fn pod_uid(part: &str) -> Option<String> {
    let body = part.strip_suffix(".slice").unwrap_or(part);
    let i = body.rfind("pod")?;
    // `pod<uid>` or `…-pod<uid>`, not `libpod-<id>`.
    if i != 0 && !body[..i].ends_with('-') {
        return None;
    }
    let uid = &body[i + 3..];
    (uid.len() >= 32
        && uid
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '_' || c == '-'))
    .then(|| uid.replace('_', "-"))
}

/// Container ids are 64 hex digits (12+ accepted for short forms).
fn is_id(s: &str) -> bool {
    s.len() >= 12 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn knows_the_common_layouts() {
        let c = identify(&format!("/docker/{ID}")).unwrap().container;
        assert_eq!((c.runtime, c.id.as_str()), (Engine::Docker, ID));
        let c = identify(&format!("/system.slice/docker-{ID}.scope"))
            .unwrap()
            .container;
        assert_eq!(c.runtime, Engine::Docker);
        let c = identify(&format!("/machine.slice/libpod-{ID}.scope/container"))
            .unwrap()
            .container;
        assert_eq!(c.runtime, Engine::Podman);
        let c = identify(&format!("/libpod_parent/libpod-{ID}"))
            .unwrap()
            .container;
        assert_eq!(c.runtime, Engine::Podman);
        assert_eq!(c.pod, None);
        let pod = "0a1b2c3d_4e5f_6a7b_8c9d_0e1f2a3b4c5d";
        let c = identify(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod}.slice/cri-containerd-{ID}.scope"
        ))
        .unwrap()
        .container;
        assert_eq!(c.runtime, Engine::Containerd);
        assert_eq!(
            c.pod.as_deref(),
            Some("0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d")
        );
        assert!(identify(&format!("/kubepods/besteffort/pod{pod}/crio-{ID}")).is_some());
        assert!(identify("/system.slice/sshd.service").is_none());
        assert!(identify("/docker/not-an-id").is_none());
    }

    #[test]
    fn finds_a_container_cgroup_by_id_prefix() {
        let root = tempfile::tempdir().unwrap();
        let other = ID.replace("0123", "0124");
        for dir in [
            format!("system.slice/docker-{ID}.scope/nested"),
            format!("docker/{other}"),
            "system.slice/sshd.service".to_owned(),
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        assert_eq!(
            find_cgroup(root.path(), "0123456789ab"),
            Ok(format!("/system.slice/docker-{ID}.scope"))
        );
        assert_eq!(
            find_cgroup(root.path(), &other[..12]),
            Ok(format!("/docker/{other}"))
        );
        assert!(matches!(
            find_cgroup(root.path(), "012"),
            Err(FindError::Ambiguous(p)) if p.len() == 2
        ));
        assert_eq!(find_cgroup(root.path(), "ffff"), Err(FindError::NotFound));
    }
}
