//! The fields of each kubeadm configuration kind, per API version, as kubeadm's strict
//! decoding knows them: a key not listed here is an unknown field (kubeadm refuses it too).
//!
//! Written from kubernetes/kubernetes `cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go` and
//! `v1beta4/types.go` and the field tables of the kubeadm Configuration (v1beta3) and
//! (v1beta4) reference pages (docs/drift.md lists the sources). Subtrees kubecert does not
//! read (extra args, volumes, envs, taints, bootstrap tokens, discovery, patches, timeouts,
//! feature gates) are [`Shape::Any`]: their contents are kubeadm's business.

use serde_json::Value;

/// What a value may be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// Anything (not read by kubecert).
    Any,
    /// A string.
    Str,
    /// A boolean.
    Bool,
    /// An integer.
    Int,
    /// A list of strings.
    Strs,
    /// An object with exactly these keys (each optional).
    Obj(&'static [(&'static str, Shape)]),
}

use Shape::*;

const API_ENDPOINT: Shape = Obj(&[("advertiseAddress", Str), ("bindPort", Int)]);

const NODE_REG_V1BETA3: Shape = Obj(&[
    ("name", Str),
    ("criSocket", Str),
    ("taints", Any),
    ("kubeletExtraArgs", Any),
    ("ignorePreflightErrors", Strs),
    ("imagePullPolicy", Str),
]);

const NODE_REG_V1BETA4: Shape = Obj(&[
    ("name", Str),
    ("criSocket", Str),
    ("taints", Any),
    ("kubeletExtraArgs", Any),
    ("ignorePreflightErrors", Strs),
    ("imagePullPolicy", Str),
    ("imagePullSerial", Bool),
]);

const NETWORKING: Shape = Obj(&[
    ("serviceSubnet", Str),
    ("podSubnet", Str),
    ("dnsDomain", Str),
]);

const EXTERNAL_ETCD_V1BETA3: Shape = Obj(&[
    ("endpoints", Strs),
    ("caFile", Str),
    ("certFile", Str),
    ("keyFile", Str),
]);

const EXTERNAL_ETCD_V1BETA4: Shape = Obj(&[
    ("endpoints", Strs),
    ("httpEndpoints", Strs),
    ("caFile", Str),
    ("certFile", Str),
    ("keyFile", Str),
]);

const ETCD_V1BETA3: Shape = Obj(&[
    (
        "local",
        Obj(&[
            ("imageRepository", Str),
            ("imageTag", Str),
            ("dataDir", Str),
            ("extraArgs", Any),
            ("serverCertSANs", Strs),
            ("peerCertSANs", Strs),
        ]),
    ),
    ("external", EXTERNAL_ETCD_V1BETA3),
]);

const ETCD_V1BETA4: Shape = Obj(&[
    (
        "local",
        Obj(&[
            ("imageRepository", Str),
            ("imageTag", Str),
            ("dataDir", Str),
            ("extraArgs", Any),
            ("extraEnvs", Any),
            ("serverCertSANs", Strs),
            ("peerCertSANs", Strs),
        ]),
    ),
    ("external", EXTERNAL_ETCD_V1BETA4),
]);

const COMPONENT_V1BETA3: Shape = Obj(&[("extraArgs", Any), ("extraVolumes", Any)]);
const COMPONENT_V1BETA4: Shape = Obj(&[
    ("extraArgs", Any),
    ("extraVolumes", Any),
    ("extraEnvs", Any),
]);

/// v1beta3 `InitConfiguration`.
pub(crate) const INIT_V1BETA3: Shape = Obj(&[
    ("apiVersion", Str),
    ("kind", Str),
    ("bootstrapTokens", Any),
    ("nodeRegistration", NODE_REG_V1BETA3),
    ("localAPIEndpoint", API_ENDPOINT),
    ("certificateKey", Str),
    ("skipPhases", Strs),
    ("patches", Any),
]);

/// v1beta4 `InitConfiguration`.
pub(crate) const INIT_V1BETA4: Shape = Obj(&[
    ("apiVersion", Str),
    ("kind", Str),
    ("bootstrapTokens", Any),
    ("dryRun", Bool),
    ("nodeRegistration", NODE_REG_V1BETA4),
    ("localAPIEndpoint", API_ENDPOINT),
    ("certificateKey", Str),
    ("skipPhases", Strs),
    ("patches", Any),
    ("timeouts", Any),
]);

/// v1beta3 `ClusterConfiguration`.
pub(crate) const CLUSTER_V1BETA3: Shape = Obj(&[
    ("apiVersion", Str),
    ("kind", Str),
    ("etcd", ETCD_V1BETA3),
    ("networking", NETWORKING),
    ("kubernetesVersion", Str),
    ("controlPlaneEndpoint", Str),
    (
        "apiServer",
        Obj(&[
            ("extraArgs", Any),
            ("extraVolumes", Any),
            ("certSANs", Strs),
            ("timeoutForControlPlane", Str),
        ]),
    ),
    ("controllerManager", COMPONENT_V1BETA3),
    ("scheduler", COMPONENT_V1BETA3),
    ("dns", Obj(&[("imageRepository", Str), ("imageTag", Str)])),
    ("certificatesDir", Str),
    ("imageRepository", Str),
    ("featureGates", Any),
    ("clusterName", Str),
]);

/// v1beta4 `ClusterConfiguration`.
pub(crate) const CLUSTER_V1BETA4: Shape = Obj(&[
    ("apiVersion", Str),
    ("kind", Str),
    ("etcd", ETCD_V1BETA4),
    ("networking", NETWORKING),
    ("kubernetesVersion", Str),
    ("controlPlaneEndpoint", Str),
    (
        "apiServer",
        Obj(&[
            ("extraArgs", Any),
            ("extraVolumes", Any),
            ("extraEnvs", Any),
            ("certSANs", Strs),
        ]),
    ),
    ("controllerManager", COMPONENT_V1BETA4),
    ("scheduler", COMPONENT_V1BETA4),
    (
        "dns",
        Obj(&[
            ("disabled", Bool),
            ("imageRepository", Str),
            ("imageTag", Str),
        ]),
    ),
    ("proxy", Obj(&[("disabled", Bool)])),
    ("certificatesDir", Str),
    ("imageRepository", Str),
    ("featureGates", Any),
    ("clusterName", Str),
    ("encryptionAlgorithm", Str),
    ("certificateValidityPeriod", Str),
    ("caCertificateValidityPeriod", Str),
]);

const JOIN_CONTROL_PLANE: Shape =
    Obj(&[("localAPIEndpoint", API_ENDPOINT), ("certificateKey", Str)]);

/// v1beta3 `JoinConfiguration`.
pub(crate) const JOIN_V1BETA3: Shape = Obj(&[
    ("apiVersion", Str),
    ("kind", Str),
    ("nodeRegistration", NODE_REG_V1BETA3),
    ("caCertPath", Str),
    ("discovery", Any),
    ("controlPlane", JOIN_CONTROL_PLANE),
    ("skipPhases", Strs),
    ("patches", Any),
]);

/// v1beta4 `JoinConfiguration`.
pub(crate) const JOIN_V1BETA4: Shape = Obj(&[
    ("apiVersion", Str),
    ("kind", Str),
    ("dryRun", Bool),
    ("nodeRegistration", NODE_REG_V1BETA4),
    ("caCertPath", Str),
    ("discovery", Any),
    ("controlPlane", JOIN_CONTROL_PLANE),
    ("skipPhases", Strs),
    ("patches", Any),
    ("timeouts", Any),
]);

/// What is wrong with a value against its [`Shape`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// A key the kind does not have (its dotted path).
    Unknown(String),
    /// A value of the wrong type (its dotted path, the type expected).
    Type(String, &'static str),
}

/// Checks `v` against `shape`; `path` is the dotted path of `v` ("" at the top).
pub(crate) fn check(v: &Value, shape: Shape, path: &str) -> Result<(), Mismatch> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (shape, v) {
        (Any, _) | (_, Value::Null) => Ok(()),
        (Str, Value::String(_)) | (Bool, Value::Bool(_)) => Ok(()),
        (Int, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        (Strs, Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                if !x.is_string() {
                    return Err(Mismatch::Type(format!("{path}[{i}]"), "a string"));
                }
            }
            Ok(())
        }
        (Obj(fields), Value::Object(m)) => {
            for (k, x) in m {
                match fields.iter().find(|(name, _)| name == k) {
                    Some((_, s)) => check(x, *s, &join(k))?,
                    None => return Err(Mismatch::Unknown(join(k))),
                }
            }
            Ok(())
        }
        (Str, _) => Err(Mismatch::Type(path.to_string(), "a string")),
        (Bool, _) => Err(Mismatch::Type(path.to_string(), "true or false")),
        (Int, _) => Err(Mismatch::Type(path.to_string(), "an integer")),
        (Strs, _) => Err(Mismatch::Type(path.to_string(), "a list of strings")),
        (Obj(_), _) => Err(Mismatch::Type(path.to_string(), "an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keys_and_wrong_types_are_named_by_path() {
        let v = json!({"apiServer": {"certSans": ["x"]}});
        assert_eq!(
            check(&v, CLUSTER_V1BETA4, ""),
            Err(Mismatch::Unknown("apiServer.certSans".into()))
        );
        let v = json!({"apiServer": {"certSANs": ["x", 5]}});
        assert_eq!(
            check(&v, CLUSTER_V1BETA4, ""),
            Err(Mismatch::Type("apiServer.certSANs[1]".into(), "a string"))
        );
        // v1beta4 dropped apiServer.timeoutForControlPlane (moved to InitConfiguration.timeouts).
        let v = json!({"apiServer": {"timeoutForControlPlane": "4m0s"}});
        assert!(check(&v, CLUSTER_V1BETA3, "").is_ok());
        assert_eq!(
            check(&v, CLUSTER_V1BETA4, ""),
            Err(Mismatch::Unknown("apiServer.timeoutForControlPlane".into()))
        );
        // Subtrees kubecert does not read are not inspected.
        let v = json!({"apiServer": {"extraArgs": {"anything": {"goes": 1}}}});
        assert!(check(&v, CLUSTER_V1BETA3, "").is_ok());
    }
}
