//! Podman's (and CRI-O's) metadata in containers-storage:
//! `<storage>/overlay-containers/containers.json` lists every container with its
//! names and, in `metadata`, the image it was made from. Podman's OCI config.json
//! has neither (its hostname is the short id).

use std::path::Path;

use super::{Identity, read_json};

/// Adds the name and image containers-storage recorded for the container.
pub fn apply(storage: &Path, identity: &mut Identity) {
    let Some(list) = read_json(&storage.join("overlay-containers/containers.json")) else {
        return;
    };
    let Some(entry) = list
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"].as_str() == Some(identity.container.id.as_str()))
    else {
        return;
    };
    // A Kubernetes name from the annotations is more specific than storage's.
    if identity.k8s.is_none()
        && let Some(name) = entry["names"].get(0).and_then(|n| n.as_str())
    {
        identity.container.name = Some(name.to_owned());
    }
    let metadata: serde_json::Value = entry["metadata"]
        .as_str()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    if identity.container.image.is_none()
        && let Some(image) = metadata["image-name"].as_str().filter(|i| !i.is_empty())
    {
        identity.container.image = Some(image.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::Engine;

    #[test]
    fn reads_the_name_and_image_from_containers_json() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("overlay-containers")).unwrap();
        std::fs::write(
            root.path().join("overlay-containers/containers.json"),
            serde_json::json!([
                {"id": "aaa", "names": ["other"]},
                {"id": "bbb", "names": ["web"], "metadata": "{\"image-name\":\"localhost/web:1\"}"}
            ])
            .to_string(),
        )
        .unwrap();
        let mut who = Identity::new(Engine::Podman, "bbb".into());
        apply(root.path(), &mut who);
        assert_eq!(who.container.name.as_deref(), Some("web"));
        assert_eq!(who.container.image.as_deref(), Some("localhost/web:1"));
    }
}
