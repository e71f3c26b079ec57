//! Container identity from a cgroup path: which runtime made the cgroup and the
//! container's id, for the layouts of Docker (cgroupfs and systemd drivers),
//! containerd/CRI, CRI-O, Podman and Kubernetes pods.

use serde::Serialize;

/// A container as its cgroup path names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub runtime: &'static str,
    pub id: String,
    /// The Kubernetes pod uid, for pod cgroups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The container's name, from its OCI runtime's config.json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Identifies the container a cgroup path belongs to, if any.
pub fn identify(path: &str) -> Option<Container> {
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
            found = Some(("docker", id.to_owned()));
        }
    }
    found.map(|(runtime, id)| Container {
        runtime,
        id,
        pod,
        name: None,
    })
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
    for e in crate::cgroups::walk(cgroup2) {
        let Some(c) = identify(&e.path) else {
            continue;
        };
        let own = e.path.trim_end_matches('/').ends_with(&c.id)
            || e.path.trim_end_matches(".scope").ends_with(&c.id);
        if own && !id.is_empty() && c.id.starts_with(&id) {
            found.push((c.id, e.path));
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
fn component(part: &str) -> Option<(&'static str, String)> {
    let body = part.strip_suffix(".scope").unwrap_or(part);
    for (prefix, runtime) in [
        ("docker-", "docker"),
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("libpod-", "podman"),
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
        let c = identify(&format!("/docker/{ID}")).unwrap();
        assert_eq!((c.runtime, c.id.as_str()), ("docker", ID));
        let c = identify(&format!("/system.slice/docker-{ID}.scope")).unwrap();
        assert_eq!(c.runtime, "docker");
        let c = identify(&format!("/machine.slice/libpod-{ID}.scope/container")).unwrap();
        assert_eq!(c.runtime, "podman");
        let pod = "0a1b2c3d_4e5f_6a7b_8c9d_0e1f2a3b4c5d";
        let c = identify(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod}.slice/cri-containerd-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(c.runtime, "containerd");
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
