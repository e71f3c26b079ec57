//! Kubernetes containers, from the OCI annotations the CRI runtimes write: containerd's
//! `io.kubernetes.cri.*` and CRI-O's `io.kubernetes.pod.*` / `io.kubernetes.container.*`
//! (CRI-O also writes `io.kubernetes.cri-o.ImageName`).

use super::{Identity, K8s};

/// Annotation keys, containerd's first: (namespace, pod, container, image).
const KEYS: [[&str; 4]; 2] = [
    [
        "io.kubernetes.cri.sandbox-namespace",
        "io.kubernetes.cri.sandbox-name",
        "io.kubernetes.cri.container-name",
        "io.kubernetes.cri.image-name",
    ],
    [
        "io.kubernetes.pod.namespace",
        "io.kubernetes.pod.name",
        "io.kubernetes.container.name",
        "io.kubernetes.cri-o.ImageName",
    ],
];

/// Adds the pod, namespace, container name and image that the annotations say.
pub fn apply(identity: &mut Identity, annotations: &serde_json::Value) {
    let get = |k: &str| {
        annotations[k]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    for [ns, pod, container, image] in KEYS {
        let (Some(namespace), Some(pod)) = (get(ns), get(pod)) else {
            continue;
        };
        let container = get(container);
        if let Some(name) = &container {
            identity.container.name = Some(name.clone());
        }
        if let Some(image) = get(image) {
            identity.container.image = Some(image);
        }
        identity.k8s = Some(K8s {
            namespace,
            pod,
            container,
        });
        return;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engines::Engine;

    #[test]
    fn containerd_and_cri_o_annotations() {
        let mut who = Identity::new(Engine::Containerd, "c1".into());
        apply(
            &mut who,
            &json!({
                "io.kubernetes.cri.sandbox-namespace": "shop",
                "io.kubernetes.cri.sandbox-name": "web-7d9f",
                "io.kubernetes.cri.container-name": "web",
                "io.kubernetes.cri.image-name": "registry.example/web:1"
            }),
        );
        let k8s = who.k8s.clone().unwrap();
        assert_eq!(
            (k8s.namespace.as_str(), k8s.pod.as_str()),
            ("shop", "web-7d9f")
        );
        assert_eq!(who.container.name.as_deref(), Some("web"));
        assert_eq!(
            who.container.image.as_deref(),
            Some("registry.example/web:1")
        );
        let mut crio = Identity::new(Engine::CriO, "c2".into());
        apply(
            &mut crio,
            &json!({"io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "p"}),
        );
        assert_eq!(crio.k8s.unwrap().pod, "p");
        let mut none = Identity::new(Engine::Runc, "c3".into());
        apply(&mut none, &json!({"io.kubernetes.pod.name": "p"}));
        assert!(none.k8s.is_none());
    }
}
