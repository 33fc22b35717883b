//! The OpenRPC document (`rpc.discover`, `schema/openrpc.json`) and the per-method JSON
//! Schemas (`schema/<method>.params.json`, `schema/<method>.result.json`), all generated from
//! [`super::METHODS`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use schemars::generate::{Contract, SchemaSettings};
use serde_json::{json, Map, Value};

use super::errors::{self, codes};
use super::METHODS;

/// OpenRPC version of the document.
pub const OPENRPC_VERSION: &str = "1.3.2";

fn openrpc_settings(contract: Contract) -> SchemaSettings {
    // OpenRPC 1.3 content descriptors hold JSON Schema draft-07.
    SchemaSettings::draft07().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
        s.contract = contract;
    })
}

fn file_settings(contract: Contract) -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| s.contract = contract)
}

fn error_object(code: i32) -> Value {
    let message = match code {
        codes::INVALID_PARAMS => "Invalid params".to_string(),
        c if c <= -32600 => errors::standard_message(c),
        c => errors::message(c).to_string(),
    };
    json!({"code": code, "message": message})
}

/// `components.errors`: every code the agent answers with, by name.
fn component_errors() -> Map<String, Value> {
    let mut out = Map::new();
    for (code, name) in errors::STANDARD_ERRORS {
        out.insert((*name).to_string(), error_object(*code));
    }
    for e in errors::SERVER_ERRORS {
        out.insert(e.name.to_string(), error_object(e.code));
    }
    out
}

/// Builds the document (uncached).
pub fn build_document() -> Value {
    // Params are read (deserialize contract), results are written (serialize contract):
    // two generators; their definitions share one namespace under components/schemas.
    let mut pg = openrpc_settings(Contract::Deserialize).into_generator();
    let mut rg = openrpc_settings(Contract::Serialize).into_generator();
    let mut methods = Vec::new();
    for m in METHODS {
        let mut ps = m.params_schema(&mut pg).to_value();
        let required: Vec<String> = ps
            .get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut params = Vec::new();
        if let Some(props) = ps.get_mut("properties").and_then(Value::as_object_mut) {
            for (name, schema) in props.iter_mut() {
                let mut schema = schema.take();
                let description = schema.as_object_mut().and_then(|o| o.remove("description"));
                let mut cd = Map::new();
                cd.insert("name".into(), json!(name));
                if let Some(d) = description {
                    cd.insert("description".into(), d);
                }
                cd.insert("required".into(), json!(required.contains(name)));
                cd.insert("schema".into(), schema);
                params.push(Value::Object(cd));
            }
        }
        let result = m.result_schema(&mut rg).to_value();
        let mut errs = vec![error_object(codes::INVALID_PARAMS)];
        errs.extend(m.errors().iter().map(|c| error_object(*c)));
        errs.push(error_object(codes::TOO_LARGE));
        methods.push(json!({
            "name": m.name(),
            "description": m.doc(),
            "tags": [{"name": if m.mutating() { "mutating" } else { "read" }}],
            "paramStructure": "by-name",
            "params": params,
            "result": {"name": m.result_name(), "schema": result},
            "errors": errs,
        }));
    }
    let mut schemas = pg.take_definitions(true);
    for (k, v) in rg.take_definitions(true) {
        // A type used both in params and results keeps its params (deserialize) form.
        schemas.entry(k).or_insert(v);
    }
    json!({
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "kubecert agent",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Certificate check, renewal and repair for kubeadm clusters as JSON-RPC 2.0 \
                            (params by name). Transports: HTTP/1.1 over a unix socket \
                            (`kubecert serve --socket`), NDJSON over stdio (`kubecert serve --stdio`). \
                            kubecert's own error codes are in -31001..-31099 (outside the \
                            -32768..-32000 band of JSON-RPC, where jsonrpsee emits codes of its \
                            own) and carry data {cert, path, cause}; components.errors lists \
                            every code.",
            "license": {"name": "Apache-2.0"}
        },
        "methods": methods,
        "components": {"schemas": schemas, "errors": component_errors()},
    })
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build_document)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

/// Every file of `schema/`: (file name, contents).
pub fn schema_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in METHODS {
        let p = m.params_file_schema(file_settings(Contract::Deserialize));
        let r = m.result_file_schema(file_settings(Contract::Serialize));
        out.push((format!("{}.params.json", m.name()), pretty(p.as_value())));
        out.push((format!("{}.result.json", m.name()), pretty(r.as_value())));
    }
    out.push(("openrpc.json".into(), pretty(document())));
    out
}

/// Writes [`schema_files`] into `dir` (created if absent); removes stale `*.params.json` /
/// `*.result.json` files of methods that no longer exist. Returns the files written.
pub fn write_schema_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = schema_files();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(".params.json") || name.ends_with(".result.json");
        if ours && !files.iter().any(|(n, _)| *n == name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    let mut written = Vec::new();
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schema_is_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
        let mut stale = Vec::new();
        let files = schema_files();
        for (name, contents) in &files {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(c) if c == *contents => {}
                _ => stale.push(name.clone()),
            }
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".json") && !files.iter().any(|(f, _)| *f == n) {
                    stale.push(format!("{n} (not generated any more)"));
                }
            }
        }
        assert!(
            stale.is_empty(),
            "schema/ differs from the code: {stale:?}; run `cargo run -- schema --out schema/` and commit"
        );
    }

    #[test]
    fn params_are_by_name_one_descriptor_per_field() {
        let doc = document();
        assert_eq!(doc["openrpc"], OPENRPC_VERSION);
        let methods = doc["methods"].as_array().cloned().unwrap_or_default();
        assert_eq!(methods.len(), METHODS.len());
        let check = methods
            .iter()
            .find(|m| m["name"] == "check")
            .cloned()
            .unwrap_or_default();
        assert_eq!(check["paramStructure"], "by-name");
        let names: Vec<&str> = check["params"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            names.contains(&"cert_dir") && names.contains(&"warn_within"),
            "{names:?}"
        );
        assert_eq!(
            check["result"]["schema"]["$ref"],
            "#/components/schemas/CheckResult"
        );
        assert!(doc["components"]["schemas"]["CheckResult"].is_object());
        let restore = methods
            .iter()
            .find(|m| m["name"] == "restore")
            .cloned()
            .unwrap_or_default();
        let bd = restore["params"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == "backup_dir").cloned())
            .unwrap_or_default();
        assert_eq!(bd["required"], true);
        // Every $ref resolves.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or("");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling ref {name}"
            );
        }
    }
}
