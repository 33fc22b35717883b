//! Where `kubecert check`'s time goes, phase by phase, on a PKI dir (`bench/run.sh` prints it
//! next to the end-to-end timings). Usage: `check_phases DIR [ROUNDS]` with DIR/pki and
//! DIR/*.conf as `kubecert demo-pki DIR` writes them. Prints microseconds per round.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kubecert::check::CheckParams;
use kubecert::pki::cert::{parse_pem_bundle, parse_private_key, signed_by};
use kubecert::pki::kubeconfig::Kubeconfig;

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn per_round(label: &str, rounds: u32, mut f: impl FnMut()) {
    let start = Instant::now();
    for _ in 0..rounds {
        f();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("{label:<44} {us:>10.1} µs");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: check_phases DIR [ROUNDS]"));
    let rounds: u32 = args.next().map_or(50, |r| r.parse().expect("ROUNDS"));
    let pki = dir.join("pki");
    let (mut crts, mut keys, mut confs) = (vec![], vec![], vec![]);
    files(&pki, "crt", &mut crts);
    files(&pki, "key", &mut keys);
    files(&dir, "conf", &mut confs);
    confs.retain(|p| p.parent() == Some(dir.as_path()));
    let read =
        |v: &[PathBuf]| -> Vec<Vec<u8>> { v.iter().map(|p| std::fs::read(p).unwrap()).collect() };
    let (crt_b, key_b, conf_b) = (read(&crts), read(&keys), read(&confs));
    let certs: Vec<_> = crt_b.iter().map(|b| parse_pem_bundle(b).unwrap()).collect();
    let cas: Vec<_> = certs.iter().filter(|c| c.info.is_ca).collect();
    println!(
        "{} certs ({} CAs), {} keys, {} kubeconfigs; {rounds} rounds",
        crts.len(),
        cas.len(),
        keys.len(),
        confs.len()
    );
    per_round("whole check (library, no process start)", rounds, || {
        let o = CheckParams {
            location: kubecert::pki::PkiLocation {
                cert_dir: Some(pki.display().to_string()),
                kubeconfig_dir: Some(dir.display().to_string()),
                ..Default::default()
            },
            ..Default::default()
        }
        .resolve()
        .unwrap();
        std::hint::black_box(kubecert::check::check(&o).expect("check"));
    });
    per_round("read every file", rounds, || {
        std::hint::black_box((read(&crts), read(&keys), read(&confs)));
    });
    per_round("parse_pem_bundle, every .crt", rounds, || {
        for b in &crt_b {
            std::hint::black_box(parse_pem_bundle(b).unwrap());
        }
    });
    per_round("parse_private_key, every .key", rounds, || {
        for b in &key_b {
            std::hint::black_box(parse_private_key(b).is_ok());
        }
    });
    per_round(
        "Kubeconfig::parse + client cert + key, every .conf",
        rounds,
        || {
            for (p, b) in confs.iter().zip(&conf_b) {
                let k = Kubeconfig::parse(p, String::from_utf8(b.clone()).unwrap()).unwrap();
                let pem = k.client_cert_pem().unwrap();
                std::hint::black_box(parse_pem_bundle(&pem).unwrap());
                std::hint::black_box(parse_private_key(&k.client_key_pem().unwrap()).is_ok());
            }
        },
    );
    per_round("signed_by, every cert x every CA", rounds, || {
        for c in &certs {
            for ca in &cas {
                std::hint::black_box(signed_by(&c.der, &ca.der));
            }
        }
    });
}
