# kubecert — two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
DEMO ?= demo
PY := .venv/bin/python
# The binary `make run` demonstrates (`make demo-run KUBECERT=dist/kubecert-...` for another).
KUBECERT ?= ./target/release/kubecert

.PHONY: all build release run demo-run deps test test-rust test-python lint sanity e2e-ha e2e-certapi soak fuzz bench schema clean dist dist-test release-test release-check bump

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

## make run: build, make a demo kubeadm PKI whose certs expire in 20 days, show check and renew.
run: release
	@$(MAKE) --no-print-directory demo-run KUBECERT=./target/release/kubecert

## make demo-run KUBECERT=BIN: the demo of `make run` with a given binary (no build).
demo-run:
	@rm -rf $(DEMO)
	$(KUBECERT) demo-pki $(DEMO) --expires-in 20d
	@echo; echo '$$ kubecert check --cert-dir $(DEMO)/pki --kubeconfig-dir $(DEMO)'
	-$(KUBECERT) check --cert-dir $(DEMO)/pki --kubeconfig-dir $(DEMO) --warn-within 30d; echo "(exit code $$?: 3 = something expires within --warn-within)"
	@echo; echo '$$ kubecert renew all --within 30d --dry-run ...'
	$(KUBECERT) renew all --cert-dir $(DEMO)/pki --kubeconfig-dir $(DEMO) --within 30d --dry-run
	@echo; echo '$$ kubecert renew all --within 30d ...'
	$(KUBECERT) renew all --cert-dir $(DEMO)/pki --kubeconfig-dir $(DEMO) --within 30d
	@echo; echo '$$ kubecert check ...'
	$(KUBECERT) check --cert-dir $(DEMO)/pki --kubeconfig-dir $(DEMO) --warn-within 30d

deps:
	./scripts/deps.sh

## make test: installs what it needs, then runs every test (Rust, Python harnesses, agent,
## Ansible, the release scripts, and the artifacts of one `make dist`).
test: deps lint test-rust test-python sanity release-test dist-test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	# lib and bin as release builds them: without the `failpoints` feature tests enable
	$(CARGO) clippy -- -D warnings

test-rust:
	$(CARGO) test --all-targets

test-python: build
	@set -e; for t in tests/harness tests/certapi tests/agent; do \
	  if [ -d $$t ]; then echo "== python tests in $$t"; $(PY) -m pytest -q $$t; fi; done
	@if [ -x ansible/tests/run-units.sh ]; then ansible/tests/run-units.sh; fi
	@if [ -x ansible/tests/run-playbooks.sh ]; then ansible/tests/run-playbooks.sh; fi
	@if [ -x ansible/tests/run-ha.sh ]; then ansible/tests/run-ha.sh; fi

sanity:
	@if [ -x ansible/tests/run-sanity.sh ]; then ansible/tests/run-sanity.sh; fi

e2e-ha: deps build
	ansible/tests/run-ha.sh

e2e-certapi: deps build
	$(CARGO) test --test certapi -- --nocapture

schema: build
	./target/debug/kubecert schema --out schema/

## Slow runs, not part of `make test`.
soak:
	KUBECERT_CRASH_TRIALS=500 $(CARGO) test --release --test crash -- --include-ignored --nocapture

fuzz:
	./scripts/fuzz.sh

bench:
	./bench/run.sh

## make dist: dist/ gets the portable binary (glibc >= 2.28) and its .sha256, the .deb, the
## .rpm and the Ansible collection tarball (scripts/dist.sh; tools in target/dist-tools).
dist:
	./scripts/dist.sh

## The release-script checks of `make test` (no dist build): bump, release-check, check-glibc.
release-test: build
	./scripts/test-release.sh target/debug/kubecert

## make dist-test: one `make dist` (built once per make run) whose artifacts are linted
## (lintian, rpmlint), run (the demo), installed and removed (dpkg, the install role's package
## and binary paths from the collection tarball). Part of `make test`.
dist-test: dist
	./scripts/dist-deps.sh --lint
	./scripts/dist-test.sh

## make release-check: the version is the same in Cargo.toml, Cargo.lock, galaxy.yml,
## CHANGELOG.md and dist/.  make bump VERSION=x.y.z: moves them all.
release-check:
	./scripts/release-check.sh

bump:
	@test -n "$(VERSION)" || { echo "usage: make bump VERSION=x.y.z" >&2; exit 2; }
	./scripts/bump-version.sh $(VERSION)

clean:
	$(CARGO) clean
	rm -rf $(DEMO) dist
