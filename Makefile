# crio-native: build, run and test on Debian 12 as root.
#   make run    install what is missing, build, start the daemon (foreground)
#   make test   install what is missing, build, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMPS := .stamps

# libsystemd-dev: systemd-python (journal) builds against it in `make build`,
# after these are installed (a pyproject dependency, not a PIP_PACKAGES one).
# libssl-dev: _native.ed25519 signs the attestation records with libcrypto.
# golang-go, golang-google-grpc-dev: tests/interop/grpcgo, the kubelet's gRPC
# library (grpc-go 1.33) as a CRI client of the daemon (test_cri_grpcgo.py).
APT_PACKAGES := gcc make pkg-config libseccomp-dev libselinux1-dev libsystemd-dev libssl-dev runc crun \
	containernetworking-plugins docker-registry busybox-static containerd openssl iproute2 util-linux \
	conmon policycoreutils selinux-policy-default golang-go golang-google-grpc-dev
PIP_PACKAGES := "setuptools>=77" wheel "Cython>=3.0" "grpcio-tools>=1.60" "grpcio>=1.60" "h2>=4.1" \
	"protobuf>=4.25" "tomli_w>=1.0" "pytest>=7" \
	"urllib3>=2.0" "zstandard>=0.22" "isal>=1.6" "ruff>=0.6" "mypy>=1.10" \
	"jeepney>=0.8" "hypothesis>=6.80" "prometheus-client>=0.17" \
	"cel-python>=0.5" "common-expression-language>=0.10" "cryptography>=42" "PyYAML>=6.0" \
	"opentelemetry-sdk>=1.25" "opentelemetry-exporter-otlp-proto-grpc>=1.25"

# Peers the benchmarks measure against, installed by `make bench` only.
BENCH_APT_PACKAGES := containerd

PYTEST_ARGS ?=
# The throw-away pure cgroup v2 VM (shared/ beside the checkout); tests marked
# `vm` run there too, where real v2 limits, OOM kills and crun are available.
VMRUN ?= $(abspath $(CURDIR)/../shared/tools/vm/vmrun.sh)
VM_TIMEOUT ?= 1200
# The second VM run: SELinux enforcing with Debian's policy plus our module
# (contrib/selinux), for the tests marked `vm_selinux`.
SELINUX_POLICY := build/selinux/policy.33
VM_SELINUX_TIMEOUT ?= 600
# where vm_selinux tests live: collecting the whole suite costs ~20 s in the VM
VM_SELINUX_TESTS ?= tests/integration tests/e2e/test_cri_selinux.py
# The third VM run: systemd as PID 1 (D-Bus, transient scopes, journald), for
# the tests marked `vm_systemd` (the systemd cgroup driver, the shipped unit).
VM_SYSTEMD_TIMEOUT ?= 900
# where vm_systemd tests live (collecting the whole suite costs ~20 s in the VM)
VM_SYSTEMD_TESTS ?= tests/e2e/test_systemd_unit.py tests/e2e/test_systemd_driver.py
# The fourth VM run: AppArmor enforcing (--apparmor), for the tests marked
# `vm_apparmor` (profiles applied by builtin and runc).
VM_APPARMOR_TIMEOUT ?= 900
VM_APPARMOR_TESTS ?= tests/e2e/test_apparmor.py

.PHONY: all install-deps build run lint test test-selinux test-systemd test-apparmor bench \
	bench-systemd bench-v2 clean

all: build

# $(call apt_ensure,PACKAGES): apt-get only the packages not installed yet.
define apt_ensure
	@missing=$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

# Idempotent and quiet once done.
install-deps: $(STAMPS)/pip
	$(call apt_ensure,$(APT_PACKAGES))
	$(prometheus_ensure)

# Prometheus scrapes the metrics endpoint in the e2e tests.  Its package
# starts a server on :9090 when installed where services can start: a
# policy-rc.d of ours (only if the machine has none) forbids that.
define prometheus_ensure
	@if ! dpkg-query -W -f='$${Status}\n' prometheus 2>/dev/null | grep -q 'install ok installed'; then \
		made=; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made=1; \
		fi; \
		echo "installing Debian packages: prometheus (its service not started)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
		rc=$$?; [ -z "$$made" ] || rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	fi
endef

$(STAMPS)/pip: Makefile
	@mkdir -p $(STAMPS)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install -q --disable-pip-version-check $(PIP_PACKAGES) 2> >(grep -v '^WARNING: Location' >&2)
	@touch $@

build: install-deps
	@$(VPY) -m pip install -q --disable-pip-version-check --no-build-isolation -e . \
		2> >(grep -vE '^WARNING: Location|BuildBackendWarning|return .\\n.\.join' >&2)

run: build
	$(VENV)/bin/crio-native daemon

# pyproject.toml's [tool.ruff] and [tool.mypy] say what is checked.
lint: build
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

test: build lint
	$(VPY) -m pytest $(PYTEST_ARGS)
	@if [ -x "$(VMRUN)" ] && [ -z "$(NO_VM)" ]; then \
		echo "== tests marked vm, inside the pure cgroup v2 VM"; \
		$(VMRUN) --share $(CURDIR) --timeout $(VM_TIMEOUT) -- \
			$(CURDIR)/$(VPY) -m pytest -m vm -p no:cacheprovider $(PYTEST_ARGS); \
	else \
		echo "== not running the vm-marked tests in a VM: no $(VMRUN) (or NO_VM set)"; \
	fi
	$(vm_selinux_run)
	$(vm_systemd_run)
	$(vm_apparmor_run)

# Only the SELinux VM run (after a build).
test-selinux: build
	$(vm_selinux_run)

# Only the systemd VM run (after a build).
test-systemd: build
	$(vm_systemd_run)

# Only the AppArmor VM run (after a build).
test-apparmor: build
	$(vm_apparmor_run)

define vm_apparmor_run
	@if [ ! -x "$(VMRUN)" ] || [ -n "$(NO_VM)" ]; then \
		echo "== not running the vm_apparmor tests: no $(VMRUN) (or NO_VM set)"; \
	else \
		echo "== tests marked vm_apparmor, inside the VM with AppArmor enforcing"; \
		$(VMRUN) --share $(CURDIR) --timeout $(VM_APPARMOR_TIMEOUT) --apparmor -- \
			$(CURDIR)/$(VPY) -m pytest -m vm_apparmor -p no:cacheprovider $(PYTEST_ARGS) \
			$(VM_APPARMOR_TESTS); \
	fi
endef

# pytest's 5 means nothing was collected: no test is marked vm_systemd yet.
define vm_systemd_run
	@if [ ! -x "$(VMRUN)" ] || [ -n "$(NO_VM)" ]; then \
		echo "== not running the vm_systemd tests: no $(VMRUN) (or NO_VM set)"; \
	else \
		echo "== tests marked vm_systemd, inside the VM with systemd as PID 1"; \
		$(VMRUN) --share $(CURDIR) --timeout $(VM_SYSTEMD_TIMEOUT) --init systemd -- \
			$(CURDIR)/$(VPY) -m pytest -m vm_systemd -p no:cacheprovider $(PYTEST_ARGS) \
			$(VM_SYSTEMD_TESTS) || [ $$? -eq 5 ]; \
	fi
endef

# Debian's policy store + contrib/selinux/crio_native.cil -> policy.33 (a copy
# of the store is changed, never the host's own).
$(SELINUX_POLICY): contrib/selinux/crio_native.cil contrib/selinux/build-policy.sh
	@contrib/selinux/build-policy.sh $(patsubst %/,%,$(dir $@))

define vm_selinux_run
	@if [ ! -x "$(VMRUN)" ] || [ -n "$(NO_VM)" ]; then \
		echo "== not running the vm_selinux tests: no $(VMRUN) (or NO_VM set)"; \
	elif ! $(MAKE) --no-print-directory -s $(SELINUX_POLICY); then \
		echo "== skipping the vm_selinux tests: cannot build $(SELINUX_POLICY) (see above)"; \
	else \
		echo "== tests marked vm_selinux, inside the VM with SELinux enforcing"; \
		$(VMRUN) --share $(CURDIR) --timeout $(VM_SELINUX_TIMEOUT) --selinux enforcing \
			--selinux-policy $(SELINUX_POLICY) -- \
			$(CURDIR)/$(VPY) -m pytest -m vm_selinux -p no:cacheprovider $(PYTEST_ARGS) \
			$(VM_SELINUX_TESTS); \
	fi
endef

bench: build
	$(call apt_ensure,$(BENCH_APT_PACKAGES))
	cd $(CURDIR) && $(VPY) -m bench $(BENCH)

# The systemd-driver benchmark needs systemd as PID 1: run it in the VM.
bench-systemd: build
	$(VMRUN) --share $(CURDIR) --timeout 1800 --init systemd -- \
		$(CURDIR)/$(VPY) -m bench systemd-driver

# Pure cgroup v2 figures (the built-in runtime against crun, pod steps) in the
# plain VM. It is software-emulated (12-50x slower than the host): read the
# ratios, not the times. BENCH_V2 picks the benchmarks; BENCH_ITERATIONS and
# BENCH_POD_STEPS, when set, are passed in (fewer rounds: the VM is slow).
BENCH_V2 ?= oci_runtime pod_steps
bench-v2: build
	$(VMRUN) --share $(CURDIR) --timeout 3000 \
		$(foreach v,BENCH_ITERATIONS BENCH_POD_STEPS,$(if $($(v)),--env $(v)=$($(v)))) -- \
		$(CURDIR)/$(VPY) -m bench $(BENCH_V2)

clean:
	rm -rf build $(STAMPS) src/*.egg-info src/crio_native/_proto src/crio_native/_bin
	find src -name '*.so' -delete
	rm -f src/crio_native/_native/*.c
