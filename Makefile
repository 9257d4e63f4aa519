# kok — the verbs are: make run, make test, make generate, make lint, make bench.
# Everything a target needs is built here from the Go module proxy; nothing else is downloaded.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := build

ROOT      := $(abspath .)
BIN       := $(ROOT)/bin
TOOLS     := $(BIN)/tools
export GOFLAGS ?= -buildvcs=false

# Kubernetes and etcd built from source by hack/k8s-bins/<version> (DESIGN.md §8).
KUBE_VERSION  ?= v1.37.2
ETCD_VERSION  ?= v3.7.0
K8S_BINS      := $(BIN)/k8s/$(KUBE_VERSION)
# The control-plane catalogue needs two minor versions to upgrade and roll back between; the
# Cluster lifecycle tests use both, so `make k8s-bins` (and so `make test`) builds both.
CLUSTER_KUBE_VERSIONS ?= v1.36.3 v1.37.2
KUBE_VERSIONS ?= $(CLUSTER_KUBE_VERSIONS)
export KOK_K8S_BINS ?= $(K8S_BINS)

# Tool versions. Bumping one reinstalls it: each lands in bin/tools under a versioned name.
CONTROLLER_GEN_VERSION ?= v0.23.0
CRD_REF_DOCS_VERSION   ?= v0.3.0
GOLANGCI_LINT_VERSION  ?= v2.15.0
WORKFLOWCHECK_VERSION  ?= v0.6.0
KWOK_VERSION           ?= v0.8.0
TEMPORAL_CLI_VERSION   ?= v1.5.1

CONTROLLER_GEN := $(TOOLS)/controller-gen-$(CONTROLLER_GEN_VERSION)
CRD_REF_DOCS   := $(TOOLS)/crd-ref-docs-$(CRD_REF_DOCS_VERSION)
GOLANGCI_LINT  := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)
WORKFLOWCHECK  := $(TOOLS)/workflowcheck-$(WORKFLOWCHECK_VERSION)
KWOK           := $(TOOLS)/kwok-$(KWOK_VERSION)
TEMPORAL_CLI   := $(TOOLS)/temporal-$(TEMPORAL_CLI_VERSION)

# go-install-tool TARGET PACKAGE@VERSION: builds one tool into bin/tools under TARGET's name.
define go-install-tool
	@mkdir -p $(TOOLS)/.gobin
	@echo "installing $(2)"
	GOBIN=$(TOOLS)/.gobin go install $(2)
	@mv $(TOOLS)/.gobin/$$(basename $$(echo $(2) | sed 's/@.*//')) $(1)
endef

##@ Main

.PHONY: run
run: build k8s-bins kwok ## Bring up the whole local system with a demo cluster (kok dev up) in the foreground; RUN_ARGS="--workers 5" passes flags.
	$(BIN)/kok dev up --k8s-bins $(K8S_BINS) --kwok-bin $(KWOK) --node-packages $(BIN)/packages \
		$(foreach v,$(CLUSTER_KUBE_VERSIONS),--cluster-versions $(v)) $(RUN_ARGS)

.PHONY: test
test: tools k8s-bins kwok host-tools verify-generate lint test-go ## Unit + integration tests and lint, as CI runs them.

.PHONY: test-go
test-go: ## go test ./... (needs k8s-bins for the integration suites).
	go test -count=1 -timeout 30m $(TEST_ARGS) ./...

.PHONY: test-unit
test-unit: ## Only the fast tests (no API server, no agents).
	go test -count=1 -short ./...

.PHONY: bench
bench: build k8s-bins ## Benchmarks; figures land in bench/results/.
	KOK_BENCH_RESULTS=$(ROOT)/bench/results go test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 150m ./bench/...

##@ Build

.PHONY: build
build: ## Build kok, kok-manager and kok-agent into bin/.
	go build -o $(BIN)/ ./cmd/kok ./cmd/kok-manager ./cmd/kok-agent

# Simulated hosts install these packages; a few seconds when the Go build cache is warm.
build: node-packages

.PHONY: node-packages
node-packages: ## Build the simulated node packages and bin/packages/catalogue.yaml (MachinePackageVersions).
	go run ./hack/catalogue --out $(BIN)/packages

.PHONY: cluster-packages
cluster-packages: ## Pack the control planes of CLUSTER_KUBE_VERSIONS and bin/cluster-packages/catalogue.yaml (ClusterPackageVersions).
	@for v in $(CLUSTER_KUBE_VERSIONS); do hack/k8s-bins/build.sh $$v; done
	go build -o $(BIN)/ ./cmd/kok-manager
	go run ./hack/cluster-catalogue --out $(BIN)/cluster-packages --k8s-bins $(BIN)/k8s --manager $(BIN)/kok-manager $(CLUSTER_KUBE_VERSIONS)

.PHONY: k8s-bins
k8s-bins: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl from source (once).
	@for v in $(KUBE_VERSIONS); do hack/k8s-bins/build.sh $$v; done

.PHONY: kwok
kwok: $(KWOK) ## Build kwok.
$(KWOK):
	$(call go-install-tool,$@,sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION))

.PHONY: temporal-cli
temporal-cli: $(TEMPORAL_CLI) ## Build the Temporal CLI.
$(TEMPORAL_CLI):
	$(call go-install-tool,$@,github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION))
	@ln -sf $(notdir $@) $(TOOLS)/temporal

.PHONY: host-tools
host-tools: ## Debian packages the installer tests drive for real (dpkg-deb, rpm); installed when missing and root.
	@missing=""; for t in dpkg-deb:dpkg rpm:rpm rpmbuild:rpm; do command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "host-tools: missing$$missing; the deb/rpm round-trip tests will skip (install them: apt-get install$$missing)"; fi; \
	fi

.PHONY: tools
tools: $(CONTROLLER_GEN) $(CRD_REF_DOCS) $(GOLANGCI_LINT) $(WORKFLOWCHECK) ## Build the code generators and linters.

$(CONTROLLER_GEN):
	$(call go-install-tool,$@,sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION))
$(CRD_REF_DOCS):
	$(call go-install-tool,$@,github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION))
$(GOLANGCI_LINT):
	$(call go-install-tool,$@,github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION))
$(WORKFLOWCHECK):
	$(call go-install-tool,$@,go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION))

##@ Generate and check

.PHONY: generate
generate: $(CONTROLLER_GEN) $(CRD_REF_DOCS) ## Deepcopy, CRDs (crds/) and the API reference (docs/reference/api.md).
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd:allowDangerousTypes=false paths=./api/... output:crd:artifacts:config=crds
	$(CRD_REF_DOCS) --source-path=./api --config=hack/crd-ref-docs.yaml --renderer=markdown --output-path=docs/reference/api.md

.PHONY: verify-generate
GENERATED := crds docs/reference api/v1alpha1/zz_generated.deepcopy.go
verify-generate: generate ## Fail when generated files are stale (CI).
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated files are stale; run 'make generate' and commit:"; \
		git status --porcelain -- $(GENERATED); git --no-pager diff --stat -- $(GENERATED); exit 1; fi

.PHONY: lint
lint: $(GOLANGCI_LINT) $(WORKFLOWCHECK) ## golangci-lint (with import rules) and Temporal's workflowcheck.
	$(GOLANGCI_LINT) run ./...
	$(WORKFLOWCHECK) ./workflows/...

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: clean
clean: ## Remove build output (keeps bin/k8s, which is slow to rebuild).
	rm -rf $(BIN)/kok $(BIN)/kok-manager $(BIN)/kok-agent $(TOOLS)

.PHONY: help
help: ## This list.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
