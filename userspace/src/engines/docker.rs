//! Docker's own metadata: `<data-root>/containers/<id>/config.v2.json`, written at
//! `docker create`, before the container's cgroup exists. It has what the OCI
//! config.json lacks: the container's name (`Name`, with a leading `/`), its image
//! (`Config.Image`) and its labels (Compose's project and service among them).

use std::path::Path;

use super::{Identity, read_json};

/// Adds the name, image and Compose service Docker recorded for the container.
pub fn apply(data_root: &Path, identity: &mut Identity) {
    let id = &identity.container.id;
    // An id is hex; anything else must not become a path.
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return;
    }
    let Some(config) = read_json(&data_root.join("containers").join(id).join("config.v2.json"))
    else {
        return;
    };
    if let Some(name) = config["Name"]
        .as_str()
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !n.is_empty())
    {
        identity.container.name = Some(name.to_owned());
    }
    if let Some(image) = config["Config"]["Image"].as_str().filter(|i| !i.is_empty()) {
        identity.container.image = Some(image.to_owned());
    }
    if let Some(labels) = config["Config"]["Labels"].as_object() {
        identity.compose_from(
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::{Compose, Engine};

    #[test]
    fn reads_name_image_and_compose_labels() {
        let root = tempfile::tempdir().unwrap();
        let id = "ab".repeat(32);
        let dir = root.path().join("containers").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.v2.json"),
            serde_json::json!({
                "Name": "/shop_web_1",
                "Config": {"Image": "shop/web:1.2", "Labels": {
                    "com.docker.compose.project": "shop",
                    "com.docker.compose.service": "web",
                    "other": "x"
                }}
            })
            .to_string(),
        )
        .unwrap();
        let mut who = Identity::new(Engine::Docker, id.clone());
        apply(root.path(), &mut who);
        assert_eq!(who.container.name.as_deref(), Some("shop_web_1"));
        assert_eq!(who.container.image.as_deref(), Some("shop/web:1.2"));
        assert_eq!(
            who.compose,
            Some(Compose {
                project: "shop".into(),
                service: "web".into()
            })
        );
        // No metadata: nothing is made up.
        let mut other = Identity::new(Engine::Docker, "cd".repeat(32));
        apply(root.path(), &mut other);
        assert_eq!(other, Identity::new(Engine::Docker, "cd".repeat(32)));
        let mut odd = Identity::new(Engine::Docker, "../../etc".into());
        apply(root.path(), &mut odd);
        assert!(odd.container.name.is_none());
    }
}
