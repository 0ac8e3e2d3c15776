# ncbnet — the two commands a new user runs are `make demo` and `make test`; both install what
# is missing first (Debian packages with apt-get, node modules with npm ci).
SHELL := /bin/bash
.DEFAULT_GOAL := help
BIN := node_modules/.bin
DEBS := nats-server wireguard-tools wireguard-go nftables iproute2 openssl iputils-ping prometheus
# Binary each package provides, in the same order, to tell whether it is installed.
DEB_BINS := nats-server wg wireguard-go nft ip openssl ping promtool
export npm_config_update_notifier := false

.PHONY: help deps sysdeps node_modules build typecheck lint test unit bench faults demo demo-pki clean

help:
	@echo "make demo    a hub and three countries in network namespaces: enroll, tunnels, a notice sent and received (root)"
	@echo "make demo-pki  the CA alone: offline enrollment, openssl checks, CRL and OCSP (no root)"
	@echo "make test    type check, lint and run every test (installs what is missing)"
	@echo "make bench   run the benchmarks (bench/), printing tables with their baselines"
	@echo "make faults  attack, fuzz and inject faults into the real hub and agents (faults/, root): refused/leaked, delivered/lost/duplicated; FAULTS_QUICK=1 for a short run"
	@echo "make deps    install missing Debian packages and node modules"
	@echo "make build   compile TypeScript to dist/ (the installed bins run from there)"

deps: sysdeps node_modules

# Installs only the packages whose binary is missing; wireguard-tools without recommends
# (otherwise it pulls a kernel image). Needs root, which CI and the demo machines have.
# prometheus is for promtool and for tests that start their own server: the service the package
# enables and starts (on :9090) is stopped and disabled again.
sysdeps:
	@missing=""; debs=($(DEBS)); bins=($(DEB_BINS)); \
	for i in "$${!debs[@]}"; do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v "$${bins[$$i]}" >/dev/null 2>&1 || missing="$$missing $${debs[$$i]}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install:$$missing" >&2; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing || exit 1; \
	  case " $$missing " in *" prometheus "*) \
	    if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service; \
	    elif [ -x /etc/init.d/prometheus ]; then /etc/init.d/prometheus stop >/dev/null; update-rc.d prometheus disable >/dev/null; fi \
	    || echo "warning: could not stop the prometheus service the package started" >&2;; \
	  esac; \
	fi

node_modules: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: node_modules
	$(BIN)/tsc -p tsconfig.build.json

typecheck: node_modules
	$(BIN)/tsc -p tsconfig.json --noEmit

lint: node_modules
	$(BIN)/eslint .

# Type check, lint, then every test with the coverage policy in .taprc.
test: deps typecheck lint
	rm -rf .tap/test-results
	$(BIN)/tap

# Tests only, no type check or lint (quicker while working).
unit: node_modules
	$(BIN)/tap

bench: deps
	$(BIN)/tsx bench/pki.ts
	$(BIN)/tsx bench/metrics-scrape.ts
	$(BIN)/tsx bench/relay.ts
	$(BIN)/tsx bench/scale.ts
	$(BIN)/tsx bench/query.ts
	$(BIN)/tsx bench/summary.ts

# The fault suite (faults/run.ts): attacks on the broker, tokens, envelopes and admin API of a real
# hub daemon; 10 000-case fuzzing of the envelope validator, the agent's local API and the
# enrollment API; and fault injection under a steady load between four countries in network
# namespaces (kill -9 of nats-server, hub and agents, hub unreachable, one country partitioned,
# a full disk, a reload storm, damaged files), each checked message by message for exactly-once
# delivery. Prints a table, writes faults/results/latest.{json,md}, exits 1 when a row fails.
# Needs root (namespaces, tmpfs). FAULTS_QUICK=1 for a short run; FAULTS_ONLY=id,id for some rows
# (ids in faults/scenarios.ts). Their checks also run in `make test`, from faults/*.test.ts.
faults: deps
	$(BIN)/tsx faults/run.ts

# The network demo: hub + countries in network namespaces, real tunnels and broker (needs root).
# DEMO_ONESHOT=1 runs the scenario once and exits 0 only if every message arrived.
demo: deps build
	$(BIN)/tsx deploy/demo/netns-demo.ts

# The CA on its own, no root needed: init, offline enrollment, openssl checks, CRL and OCSP.
demo-pki: deps
	$(BIN)/tsx deploy/demo/pki-demo.ts

clean:
	rm -rf dist .tap coverage
