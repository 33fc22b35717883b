//! Flags of `kubecert restart`, `kubecert health` and `kubecert served`: thin faces over
//! [`kubecert::ops`], building the same params as the JSON-RPC methods. Exit codes: 0 ok;
//! 4 failed (not healthy, a stale or expired served certificate, a failed restart);
//! `served`: 3 when an endpoint is unreachable; 1 error; 2 usage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use kubecert::ops::endpoints::{Endpoint, EndpointOverride, Owner};
use kubecert::ops::health::{self, HealthParams};
use kubecert::ops::restart::{self, RestartMethod, RestartParams};
use kubecert::ops::served::{self, ServedParams, ServedProbe};
use kubecert::pki::inventory::Component;
use kubecert::render;

use super::unattended::millis;
use super::{path_str, print, TextJson};

fn parse_component(s: &str) -> Result<Component, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!("unknown component {s:?} (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)")
    })
}

fn parse_owner(s: &str) -> Result<Owner, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!(
            "unknown component {s:?} (etcd, kube-apiserver, kube-controller-manager, \
             kube-scheduler, kubelet)"
        )
    })
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!(
            "unknown endpoint {s:?} (etcd-client, etcd-peer, kube-apiserver, \
             kube-controller-manager, kube-scheduler, kubelet)"
        )
    })
}

fn parse_pair(s: &str) -> Result<(Endpoint, String), String> {
    let (e, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ENDPOINT=VALUE, got {s:?}"))?;
    Ok((parse_endpoint(e)?, v.to_string()))
}

/// Where to find and how to reach the endpoints (shared by the three commands).
#[derive(clap::Args, Debug)]
pub(super) struct EndpointArgs {
    /// PKI dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// Static pod manifests dir the endpoints are read from.
    #[arg(long, default_value = kubecert::ops::served::DEFAULT_MANIFESTS_DIR)]
    manifests_dir: PathBuf,
    /// Connect to ENDPOINT at HOST:PORT instead (e.g. etcd-client=10.0.0.5:2379); repeatable.
    #[arg(long = "endpoint", value_name = "ENDPOINT=HOST:PORT", value_parser = parse_pair)]
    endpoints: Vec<(Endpoint, String)>,
    /// Compare ENDPOINT with this certificate file instead; repeatable.
    #[arg(long = "endpoint-cert", value_name = "ENDPOINT=FILE", value_parser = parse_pair)]
    endpoint_certs: Vec<(Endpoint, String)>,
}

impl EndpointArgs {
    fn overrides(&self) -> Vec<EndpointOverride> {
        overrides(&self.endpoints, &self.endpoint_certs)
    }
}

fn overrides(
    endpoints: &[(Endpoint, String)],
    endpoint_certs: &[(Endpoint, String)],
) -> Vec<EndpointOverride> {
    {
        let mut out: Vec<EndpointOverride> = Vec::new();
        for (e, addr, cert) in endpoints
            .iter()
            .map(|(e, a)| (*e, Some(a.clone()), None))
            .chain(
                endpoint_certs
                    .iter()
                    .map(|(e, c)| (*e, None, Some(c.clone()))),
            )
        {
            match out.iter_mut().find(|o| o.endpoint == Some(e)) {
                Some(o) => {
                    o.address = addr.or(o.address.take());
                    o.cert = cert.or(o.cert.take());
                }
                None => out.push(EndpointOverride {
                    endpoint: Some(e),
                    address: addr,
                    cert,
                }),
            }
        }
        out
    }
}

fn ms(flag: &str, s: &str) -> Result<u64> {
    Ok(u64::try_from(millis(flag, s)?.as_millis()).unwrap_or(u64::MAX))
}

/// `--served` and the flags of the probe, for `check` and `metrics` (the PKI dir, the
/// kubelet's cert dir and the clock are theirs).
#[derive(clap::Args, Debug)]
pub(super) struct ServedProbeArgs {
    /// Also prove what each component serves over TLS (etcd client and peer, kube-apiserver,
    /// controller-manager, scheduler, kubelet): a stale or expired served certificate fails,
    /// an unreachable endpoint warns.
    #[arg(long)]
    served: bool,
    /// With --served: static pod manifests dir the endpoints are read from.
    #[arg(long, requires = "served", default_value = kubecert::ops::served::DEFAULT_MANIFESTS_DIR)]
    manifests_dir: PathBuf,
    /// With --served: connect to ENDPOINT at HOST:PORT instead (e.g.
    /// kubelet=127.0.0.1:10250); repeatable.
    #[arg(long = "endpoint", requires = "served", value_name = "ENDPOINT=HOST:PORT", value_parser = parse_pair)]
    endpoints: Vec<(Endpoint, String)>,
    /// With --served: compare ENDPOINT with this certificate file instead; repeatable.
    #[arg(long = "endpoint-cert", requires = "served", value_name = "ENDPOINT=FILE", value_parser = parse_pair)]
    endpoint_certs: Vec<(Endpoint, String)>,
    /// With --served: bound on connect + TLS handshake of each endpoint (probed concurrently).
    #[arg(long, requires = "served", default_value = "3s")]
    served_timeout: String,
    /// With --served or --kubelet: the kubelet's config file (address, port, tlsCertFile,
    /// tlsPrivateKeyFile, serverTLSBootstrap): which serving certificate the kubelet uses.
    #[arg(long, default_value = kubecert::ops::endpoints::DEFAULT_KUBELET_CONFIG)]
    kubelet_config: PathBuf,
}

impl ServedProbeArgs {
    /// The params (`served: false` when --served is absent).
    pub(super) fn probe(&self) -> Result<ServedProbe> {
        if !self.served {
            // The kubelet config also tells the kubelet section which serving pair is used.
            return Ok(ServedProbe {
                kubelet_config: Some(path_str(&self.kubelet_config)),
                ..ServedProbe::default()
            });
        }
        Ok(ServedProbe {
            served: true,
            manifests_dir: Some(path_str(&self.manifests_dir)),
            endpoints: overrides(&self.endpoints, &self.endpoint_certs),
            timeout_ms: Some(ms("served-timeout", &self.served_timeout)?),
            kubelet_config: Some(path_str(&self.kubelet_config)),
        })
    }
}

/// Flags of `kubecert served`.
#[derive(clap::Args, Debug)]
pub(super) struct ServedArgs {
    /// Components: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
    /// (default: all five).
    #[arg(value_parser = parse_owner)]
    components: Vec<Owner>,
    #[command(flatten)]
    ep: EndpointArgs,
    /// The kubelet's config file (address, port, tlsCertFile, serverTLSBootstrap).
    #[arg(long, default_value = kubecert::ops::endpoints::DEFAULT_KUBELET_CONFIG)]
    kubelet_config: PathBuf,
    /// The kubelet's cert dir (kubelet.crt, kubelet-server-current.pem).
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBELET_PKI)]
    kubelet_pki: PathBuf,
    /// Bound on connect + TLS handshake of each endpoint.
    #[arg(long, default_value = "3s")]
    timeout: String,
    /// Fixed clock (RFC 3339) for the expiry of the served certificates.
    #[arg(long)]
    now: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

pub(super) fn served_cmd(a: ServedArgs) -> Result<ExitCode> {
    let r = served::served_call(&ServedParams {
        components: a.components,
        cert_dir: Some(path_str(&a.ep.cert_dir)),
        manifests_dir: Some(path_str(&a.ep.manifests_dir)),
        endpoints: a.ep.overrides(),
        timeout_ms: Some(ms("timeout", &a.timeout)?),
        now: a.now,
        kubelet_config: Some(path_str(&a.kubelet_config)),
        kubelet_pki: Some(path_str(&a.kubelet_pki)),
    })?;
    match a.output {
        TextJson::Text => print(&served::render_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    Ok(ExitCode::from(r.level.exit_code()))
}

/// Flags of `kubecert health`.
#[derive(clap::Args, Debug)]
pub(super) struct HealthArgs {
    /// Components (default: all four).
    #[arg(value_parser = parse_component)]
    components: Vec<Component>,
    #[command(flatten)]
    ep: EndpointArgs,
    /// Bound on the whole wait: the command returns within it.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Bound on one request.
    #[arg(long, default_value = "5s")]
    request_timeout: String,
    /// Pause between polls.
    #[arg(long, default_value = "1s")]
    interval: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

pub(super) fn health_cmd(a: HealthArgs) -> Result<ExitCode> {
    let r = health::health_call(&HealthParams {
        components: a.components,
        cert_dir: Some(path_str(&a.ep.cert_dir)),
        manifests_dir: Some(path_str(&a.ep.manifests_dir)),
        endpoints: a.ep.overrides(),
        timeout_ms: Some(ms("timeout", &a.timeout)?),
        request_timeout_ms: Some(ms("request-timeout", &a.request_timeout)?),
        interval_ms: Some(ms("interval", &a.interval)?),
    })?;
    match a.output {
        TextJson::Text => print(&health::render_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    Ok(ExitCode::from(if r.healthy { 0 } else { 4 }))
}

#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub(super) enum MethodArg {
    /// Move the static pod manifest out of the manifests dir and back.
    ManifestMove,
    /// Stop the containers with crictl; the kubelet starts them again.
    Crictl,
    /// Run --restart-command.
    Command,
    /// Restart nothing (health and proof only).
    None,
}

/// Flags of `kubecert restart`.
#[derive(clap::Args, Debug)]
pub(super) struct RestartArgs {
    /// Components to restart, one at a time (etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler).
    #[arg(required = true, value_parser = parse_component)]
    components: Vec<Component>,
    /// How to restart.
    #[arg(long, value_enum, default_value_t = MethodArg::ManifestMove)]
    method: MethodArg,
    #[command(flatten)]
    ep: EndpointArgs,
    /// Where manifests wait while their pod stops (default <manifests-dir>/../kubecert-parked-manifests).
    #[arg(long)]
    park_dir: Option<PathBuf>,
    /// --method command: the command ({component}, {manifest} are replaced).
    #[arg(long, value_name = "TEMPLATE")]
    restart_command: Option<String>,
    /// --method crictl: the crictl binary.
    #[arg(long)]
    crictl: Option<String>,
    /// Manifest-move: a command that succeeds once the old pod has stopped (default: poll
    /// until the component is unhealthy).
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "stop_delay")]
    stop_command: Option<String>,
    /// Manifest-move: wait this long instead (e.g. 20s).
    #[arg(long)]
    stop_delay: Option<String>,
    /// Bound on the stop wait and on --restart-command.
    #[arg(long, default_value = "120s")]
    stop_timeout: String,
    /// Health command for every component (default: kubecert's own check, as `kubecert health`).
    #[arg(long, value_name = "TEMPLATE")]
    health_command: Option<String>,
    /// Bound on the wait for health after each restart.
    #[arg(long, default_value = "300s")]
    health_timeout: String,
    /// Pause between polls.
    #[arg(long, default_value = "2s")]
    poll_interval: String,
    /// Bound on one stop/health command or request.
    #[arg(long, default_value = "30s")]
    command_timeout: String,
    /// Skip the served-certificate proof after each restart.
    #[arg(long)]
    no_served_proof: bool,
    /// The proof fails only on a stale certificate, not on an unreachable endpoint.
    #[arg(long)]
    served_allow_unreachable: bool,
    /// Components that do not run on this host: their unreachable endpoints are reported,
    /// not a failure (a stale certificate still fails). Comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_component)]
    served_not_required: Vec<Component>,
    /// Bound on connect + handshake of each endpoint of the proof.
    #[arg(long, default_value = "3s")]
    served_timeout: String,
    /// Only say what would be restarted.
    #[arg(long)]
    dry_run: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

pub(super) fn restart_cmd(a: RestartArgs) -> Result<ExitCode> {
    let method = match a.method {
        MethodArg::ManifestMove => RestartMethod::ManifestMove,
        MethodArg::Crictl => RestartMethod::Crictl,
        MethodArg::Command => RestartMethod::Command,
        MethodArg::None => RestartMethod::None,
    };
    let r = restart::restart(&RestartParams {
        components: a.components,
        method: Some(method),
        cert_dir: Some(path_str(&a.ep.cert_dir)),
        manifests_dir: Some(path_str(&a.ep.manifests_dir)),
        park_dir: a.park_dir.as_deref().map(path_str),
        restart_command: a.restart_command,
        crictl: a.crictl,
        stop_command: a.stop_command,
        stop_delay_ms: a
            .stop_delay
            .as_deref()
            .map(|d| ms("stop-delay", d))
            .transpose()?,
        stop_timeout_ms: Some(ms("stop-timeout", &a.stop_timeout)?),
        health_command: a.health_command,
        health_timeout_ms: Some(ms("health-timeout", &a.health_timeout)?),
        poll_interval_ms: Some(ms("poll-interval", &a.poll_interval)?),
        command_timeout_ms: Some(ms("command-timeout", &a.command_timeout)?),
        endpoints: a.ep.overrides(),
        served: Some(!a.no_served_proof),
        served_require_reachable: Some(!a.served_allow_unreachable),
        served_not_required: a.served_not_required,
        served_timeout_ms: Some(ms("served-timeout", &a.served_timeout)?),
        dry_run: a.dry_run,
    })?;
    match a.output {
        TextJson::Text => print(&restart::render_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    Ok(ExitCode::from(if r.ok { 0 } else { 4 }))
}
