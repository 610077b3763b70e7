"""What the harness would submit: the Job manifest and the cluster set-up in k8s/.

No cluster is needed. The official Kubernetes OpenAPI schemas (bundled by
``kubernetes-validate``) stand in for the API server's schema validation, in
strict mode, for every version we support. They miss enum values and rules
that tie fields together (and Pod Security admission), so those are checked
here explicitly, as the API server and admission would.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from harness import executors
from harness.backends import BACKENDS, get
from harness.errors import ConfigError
from harness.executors.base import ExecutorContext, JobSpec, JobState
from harness.executors.kubernetes import sharing
from harness.executors.kubernetes.executor import KubernetesExecutor
from harness.executors.kubernetes.manifests import (
    CONTAINER,
    ManifestTemplate,
    active_deadline_s,
    job_name,
    label_value,
    probe_values,
    template_values,
)
from harness.executors.kubernetes.options import OPTIONS, cpu_quantity
from harness.executors.kubernetes.preflight import PERMISSIONS
from harness.executors.kubernetes.settings import DEFAULT_TEMPLATE, K8sSettings
from harness.run_store import RunStore
from harness.tuning import job_env

REPO = Path(__file__).resolve().parents[1]
SUPPORTED_VERSIONS = [f"1.{minor}" for minor in range(27, 38)]
"""Oldest: 1.27 (podFailurePolicy beta, on by default since 1.26; DisruptionTarget conditions). Newest: 1.37."""
OVERLAYS = ["k8s/nfs", "k8s/local"]


def settings(**overrides) -> K8sSettings:
    return K8sSettings.from_settings(overrides)


def spec(backend: str = "tensorflow", phase: str = "train", run_id: str = "20260101-120000-abcd",
         threads: int = 2) -> JobSpec:
    return JobSpec(run_id, get(backend), phase, job_env(get(backend), threads), 900.0, threads)


def probe_manifest(job: JobSpec, **overrides) -> dict:
    """The write probe's Job, as the executor renders it: a job's manifest with the probe's command (issue 29)."""
    chosen = settings(**overrides)
    shared = Path("/srv/kbench")
    command = sharing.probe_command("token", sharing.probe_folders(RunStore(shared, job.run_id), [job.backend.name]),
                                    [shared / "inputs" / "key" / "data.tar.gz"], shared, chosen.mount_path)
    return ManifestTemplate(chosen.template).render(probe_values(job, chosen, "token", command))


def render(job: JobSpec | None = None, **overrides) -> dict:
    chosen = settings(**overrides)
    return ManifestTemplate(chosen.template).job_manifest(job or spec(), chosen, submission="token")


GPU_POOL = "cloud.google.com/gke-accelerator=nvidia-l4,pool=gpu"
GPU_TAINTS = "dedicated=ml:NoSchedule,nvidia.com/gpu:NoSchedule,spot"


def every_manifest() -> list[tuple[str, dict]]:
    found = []
    for backend in BACKENDS:
        for phase in ("train", "predict", "fidelity"):
            found.append((f"{backend}-{phase}", render(spec(backend, phase))))
    found.append(("gpu", render(spec("jax"), k8s_gpus=1)))
    found.append(("gpu-pool", render(spec("torch"), k8s_gpus=2, k8s_node_selector=GPU_POOL, k8s_toleration=GPU_TAINTS,
                                     k8s_image_pull_secret="regcred,mirror", k8s_arch="amd64,arm64")))
    found.append(("any-arch", render(spec("tensorflow"), k8s_arch="any")))
    found.append(("probe", probe_manifest(spec("theano", "probe"))))
    found.append(("gpu-probe", probe_manifest(spec("jax", "probe"), k8s_gpus=1, k8s_node_selector=GPU_POOL)))
    found.append(("custom", render(spec("cntk"), k8s_cpu="500m", k8s_memory="1536Mi", k8s_pull_policy="always",
                                   k8s_uid=2000, k8s_gid=3000, k8s_mount_path="/mnt/nfs/")))
    return found


def pod_spec(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


def container(manifest: dict) -> dict:
    return pod_spec(manifest)["containers"][0]


# -- schema validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_job_manifest_validates_strictly_against_the_official_schema(version):
    for label, manifest in every_manifest():
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{label} does not validate against Kubernetes {version}: {err}")


def test_strict_validation_would_catch_a_misspelt_field():
    """The validator is not a rubber stamp: a typo in the template is an error."""
    manifest = render()
    manifest["spec"]["backofLimit"] = manifest["spec"].pop("backoffLimit")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, SUPPORTED_VERSIONS[-1], strict=True)


def kustomize(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; `kubectl kustomize` renders the k8s/ overlays offline")
    out = subprocess.run([kubectl, "kustomize", str(REPO / overlay)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", [SUPPORTED_VERSIONS[0], SUPPORTED_VERSIONS[-1]])
def test_the_cluster_set_up_validates_strictly(overlay, version):
    documents = kustomize(overlay)
    assert {d["kind"] for d in documents} == {"Namespace", "ServiceAccount", "Role", "RoleBinding",
                                              "PersistentVolume", "PersistentVolumeClaim"}
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


# -- rules the schema cannot express: the Job ---------------------------------------------------------------
def test_the_pod_failure_policy_is_one_the_api_server_accepts():
    """Cross-field rules of podFailurePolicy (validation.go), which no schema checks."""
    manifest = render()
    rules = manifest["spec"]["podFailurePolicy"]["rules"]
    assert pod_spec(manifest)["restartPolicy"] == "Never"  # required with a podFailurePolicy
    for rule in rules:
        assert rule["action"] in {"FailJob", "Ignore", "Count"}
        on_codes, on_conditions = rule.get("onExitCodes"), rule.get("onPodConditions") or []
        assert bool(on_codes) != bool(on_conditions), f"exactly one of onExitCodes, onPodConditions: {rule}"
        if on_codes:
            assert on_codes["operator"] in {"In", "NotIn"}
            assert on_codes["values"] == sorted(set(on_codes["values"]))
            assert 0 not in on_codes["values"]  # In with 0 is rejected
            assert on_codes["containerName"] == container(manifest)["name"] == CONTAINER
        for pattern in on_conditions:
            assert pattern["status"] in {"True", "False", "Unknown"}


def test_disruptions_are_ignored_and_hopeless_exit_codes_fail_the_job_at_once():
    rules = render()["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"]["values"] == [2, 3]  # bad usage, bad input: see harness/workload/__main__.py


def test_the_job_is_bounded_in_retries_and_time():
    """The deadline covers the job's timeout, waiting for room and scheduling and pulling (issue 29 item 1):
    the Job controller counts it from the Job's start, however long the pod waited for room."""
    job = spec()
    chosen = {"k8s_schedule_timeout": 120, "k8s_capacity_wait": 600}
    manifest = render(job, k8s_backoff_limit=2, k8s_ttl=3600, **chosen)
    assert manifest["spec"]["backoffLimit"] == 2
    assert manifest["spec"]["activeDeadlineSeconds"] == active_deadline_s(job, settings(**chosen))
    assert manifest["spec"]["activeDeadlineSeconds"] == 900 + 600 + 120
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 3600


@pytest.mark.parametrize(("label", "manifest"), every_manifest())
def test_pods_meet_the_restricted_pod_security_standard(label, manifest):
    """The checks of Pod Security admission's "restricted" profile, plus our own hardening."""
    pod = pod_spec(manifest)
    for forbidden in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        assert not pod.get(forbidden)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] in {"RuntimeDefault", "Localhost"}
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= allowed_volumes, volume
    for box in pod["containers"]:
        context = box["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add")
        assert not context.get("privileged")
        assert context.get("runAsNonRoot", True) is True
        assert not box.get("ports")
        # beyond "restricted": no writable root filesystem and no API token
        assert context["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container(manifest)["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])


@pytest.mark.parametrize(("label", "manifest"), every_manifest())
def test_requests_equal_limits(label, manifest):
    resources = container(manifest)["resources"]
    assert resources["requests"] == resources["limits"]
    assert {"cpu", "memory"} <= set(resources["limits"])


def test_enum_fields_hold_allowed_values():
    for _label, manifest in every_manifest():
        box = container(manifest)
        assert box["imagePullPolicy"] in {"Always", "IfNotPresent", "Never"}
        assert box["terminationMessagePolicy"] in {"File", "FallbackToLogsOnError"}


def test_the_container_runs_the_workload_against_the_mounted_volume():
    manifest = render(spec("theano", "predict", run_id="nightly-7"), k8s_mount_path="/mnt/kbench")
    box = container(manifest)
    assert box["command"] == ["python", "-m", "harness.workload", "predict", "--shared", "/mnt/kbench",
                              "--run-id", "nightly-7", "--backend", "theano"]
    assert box["image"] == "kbench-keras2:0.1.0"
    mount = next(m for m in box["volumeMounts"] if m["name"] == "shared")
    assert mount == {"name": "shared", "mountPath": "/mnt/kbench"}  # the whole volume: no subPath
    claim = next(v for v in pod_spec(manifest)["volumes"] if v["name"] == "shared")
    assert claim["persistentVolumeClaim"]["claimName"] == "kbench-shared"
    env = {e["name"]: e["value"] for e in box["env"]}
    assert env["KERAS_BACKEND"] == "theano" and env["HOME"] == "/tmp"


def test_each_image_serves_its_keras_line():
    assert container(render(spec("torch")))["image"] == "kbench-keras3:0.1.0"
    assert container(render(spec("cntk"), k8s_legacy_image="registry.example/k2:1"))["image"] == "registry.example/k2:1"


def test_gpus_are_requested_as_quantity_strings_tolerated_and_not_hidden_from_jax():
    """Issue 28 item 3: the schema types a quantity as a string; client 37 refuses ``nvidia.com/gpu: 1``."""
    manifest = render(spec("jax"), k8s_gpus=2)
    resources = container(manifest)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2" == resources["requests"]["nvidia.com/gpu"]
    assert all(isinstance(v, str) for part in resources.values() for v in part.values())
    assert pod_spec(manifest)["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "JAX_PLATFORMS" not in {e["name"] for e in container(manifest)["env"]}
    assert "JAX_PLATFORMS" in {e["name"] for e in container(render(spec("jax")))["env"]}


def test_a_gpu_node_pool_is_reached_with_its_labels_and_taints():
    """Issue 28 item 3 and 29 item 6: --k8s-node-selector and --k8s-toleration, one set of options for every pool."""
    pod = pod_spec(render(spec("torch"), k8s_gpus=1, k8s_node_selector=GPU_POOL, k8s_toleration=GPU_TAINTS,
                          k8s_image_pull_secret="regcred"))
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "gpu"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},  # given: not added twice
        {"key": "spot", "operator": "Exists"},
    ]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    plain = pod_spec(render(spec("torch")))
    assert not {"nodeSelector", "tolerations", "imagePullSecrets"} & set(plain)


def arch_of(manifest: dict) -> list[str] | None:
    terms = (((pod_spec(manifest).get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    found = [e["values"] for t in terms for e in t["matchExpressions"] if e["key"] == "kubernetes.io/arch"]
    return found[0] if found else None


def test_jobs_run_only_on_nodes_of_their_images_architecture(monkeypatch):
    """Issue 29 item 6: an amd64 image on an arm64 node ends in "exec format error"; the arch is required.

    The images' default is this machine's architecture (``docker build`` builds
    for it); cntk runs on amd64 only (CNTK 2.7 wheels are x86_64 only).
    """
    from harness.executors.kubernetes import options

    monkeypatch.setattr(options.platform, "machine", lambda: "aarch64")
    assert arch_of(render(spec("jax"))) == ["arm64"] == arch_of(render(spec("theano")))
    assert arch_of(render(spec("jax"), k8s_arch="amd64,arm64")) == ["amd64", "arm64"]
    assert arch_of(render(spec("cntk"), k8s_arch="amd64,arm64")) == ["amd64"]
    assert arch_of(render(spec("jax"), k8s_arch="any")) is None
    assert arch_of(render(spec("cntk"), k8s_arch="any")) == ["amd64"]
    assert arch_of(render(spec("cntk"), k8s_node_selector="kubernetes.io/arch=amd64")) is None  # said by the user
    monkeypatch.setattr(options.platform, "machine", lambda: "x86_64")
    assert arch_of(render(spec("torch"))) == ["amd64"] == arch_of(render(spec("cntk")))


def test_cntk_is_skipped_with_the_reason_when_the_images_are_not_amd64(tmp_path):
    """Issue 29 item 6: the legacy image built for arm64 holds Theano alone (CNTK 2.7 exists for x86_64 only)."""
    executor = KubernetesExecutor(ExecutorContext(tmp_path, tmp_path, None, print), {"k8s_arch": "arm64"})
    skipped = executor.unavailable([get("theano"), get("cntk"), get("jax")])
    assert list(skipped) == ["cntk"] and "x86_64" in skipped["cntk"] and "--k8s-arch" in skipped["cntk"]
    both = KubernetesExecutor(ExecutorContext(tmp_path, tmp_path, None, print), {"k8s_arch": "amd64,arm64"})
    assert both.unavailable([get("cntk")]) == {}
    executor.close()
    both.close()


def test_values_that_look_like_yaml_stay_strings():
    job = JobSpec("r1", get("theano"), "train", {"THEANO_FLAGS": "blas.ldflags=-lopenblas,floatX=float32",
                                                  "ODD": "yes: no # not a comment", "EMPTY": ""}, 60, 1)
    env = {e["name"]: e["value"] for e in container(render(job))["env"]}
    assert env["THEANO_FLAGS"] == "blas.ldflags=-lopenblas,floatX=float32"
    assert env["ODD"] == "yes: no # not a comment" and env["EMPTY"] == ""


# -- names and labels ---------------------------------------------------------------------------------------
def test_job_names_are_unique_per_run_backend_and_phase_and_valid():
    names = {job_name(run, b, p) for run in ("a", "b") for b in BACKENDS for p in ("train", "predict")}
    assert len(names) == 2 * len(BACKENDS) * 2
    longest = "x" * 38 + "-9"
    for name in names | {job_name(longest, "tensorflow", "predict")}:
        assert len(name) <= 63 and name == name.lower() and name[0].isalnum() and name[-1].isalnum()
    assert job_name(longest, "tensorflow", "predict") != job_name("x" * 38 + "-8", "tensorflow", "predict")
    assert job_name("nightly-42", "jax", "train") == "kbench-nightly-42-jax-train"


def test_jobs_are_labelled_with_run_and_backend_on_job_and_pods():
    manifest = render(spec("torch", "predict", run_id="nightly-42"))
    for labels in (manifest["metadata"]["labels"], manifest["spec"]["template"]["metadata"]["labels"]):
        assert labels["kbench.io/run-id"] == "nightly-42"
        assert labels["kbench.io/backend"] == "torch"
        assert labels["kbench.io/phase"] == "predict"
        assert labels["kbench.io/job"] == manifest["metadata"]["name"]


def test_label_values_are_made_valid_without_collisions():
    assert label_value("nightly-42") == "nightly-42"
    odd = label_value("a run/with spaces" + "x" * 80)
    assert len(odd) <= 63 and odd[0].isalnum() and odd[-1].isalnum()
    assert label_value("a/b") != label_value("a b")


# -- the template and the options ---------------------------------------------------------------------------
def test_a_broken_template_is_a_config_error_naming_it(tmp_path):
    broken = tmp_path / "job.yaml.j2"
    broken.write_text("apiVersion: batch/v1\nkind: Job\nmetadata: {{ nope }}\n")
    with pytest.raises(ConfigError, match=f"the Job template {broken} failed to render"):
        ManifestTemplate(broken).job_manifest(spec(), settings())
    with pytest.raises(ConfigError, match="cannot read the Job template"):
        ManifestTemplate(tmp_path / "missing.j2")


def test_the_default_template_is_the_one_in_k8s():
    assert DEFAULT_TEMPLATE.read_text() == (REPO / "k8s" / "job.yaml.j2").read_text()
    assert set(template_values(spec(), settings())) >= {"name", "namespace", "image", "command", "env", "pvc"}


def test_options_are_declared_once_with_a_common_prefix():
    flags = [o.flag for o in OPTIONS]
    assert len(flags) == len(set(flags))
    assert all(f.startswith("--k8s-") or f == "--emit-manifests" for f in flags)
    assert OPTIONS == executors.options("kubernetes")
    from harness.executors import local_options

    assert executors.options("local") == local_options.OPTIONS


def test_option_values_are_parsed_and_checked():
    assert cpu_quantity("500m") == "500m" and settings(k8s_cpu="500m").threads == 1
    assert settings(k8s_cpu="3.5").threads == 3
    assert settings(k8s_pull_policy="never").pull_policy == "Never"
    assert settings(k8s_gpus="2").gpus == 2
    assert settings(k8s_node_selector="a=b, c.io/d=").node_selector == (("a", "b"), ("c.io/d", ""))
    assert [str(t) for t in settings(k8s_toleration="k:NoExecute,k2=v").tolerations] == ["k:NoExecute", "k2=v"]
    assert settings(k8s_image_pull_secret="a,b.c").image_pull_secrets == ("a", "b.c")
    assert settings(k8s_arch="ARM64").architectures == ("arm64",) and settings(k8s_arch="any").architectures == ()
    for option, value in (("k8s_cpu", "two"), ("k8s_memory", "4 GB"), ("k8s_namespace", "Not_Valid"),
                          ("k8s_gpus", "-1"), ("k8s_mount_path", "relative/path"), ("k8s_pull_policy", "sometimes"),
                          ("k8s_node_selector", "pool"), ("k8s_node_selector", "a=b c"),
                          ("k8s_toleration", "gpu:NoRun"), ("k8s_toleration", "bad key=v"),
                          ("k8s_image_pull_secret", "Reg_Cred"), ("k8s_arch", "x86_64"), ("k8s_arch", "amd64,any")):
        flag = "--" + option.replace("_", "-")
        with pytest.raises(ConfigError, match=flag):
            settings(**{option: value})


@pytest.mark.parametrize("uid", ["0", 0])
def test_root_is_refused_as_the_jobs_user_with_the_reason(uid):
    """Issue 13 item 3: ``runAsUser: 0`` beside ``runAsNonRoot: true`` is refused by the kubelet.

    Kubernetes docs, "Configure a Security Context for a Pod or Container"
    (runAsNonRoot: the kubelet validates the image does not run as UID 0) and
    "Pod Security Standards", Restricted, "Running as Non-root user": runAsUser
    must not be 0. The kind recipe's ``--k8s-uid $(id -u)`` is 0 under root.
    """
    with pytest.raises(ConfigError, match=r"--k8s-uid: 0 is root, and the pods must run as non-root"):
        settings(k8s_uid=uid)
    assert settings(k8s_uid="1001").uid == 1001


def loaded_by(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running ``code``."""
    probe = code + "\nimport sys; print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_registering_the_options_loads_no_client_template_engine_or_yaml():
    """Issue 24 item 5: the options live in a light module; reading them imports only the standard library
    and the harness's ``Option``, whether through the registry or the module itself."""
    loaded = loaded_by("from harness import executors; assert executors.options('kubernetes')\n"
                       "from harness.executors.kubernetes.options import OPTIONS; assert OPTIONS")
    assert "harness" in loaded
    assert not loaded & {"kubernetes", "jinja2", "yaml", "urllib3", "pydantic"}, loaded


def test_building_the_executor_class_does_not_load_the_kubernetes_client():
    """The pytest plugin builds every executor class at start-up; the client is imported on first contact."""
    loaded = loaded_by("from harness import executors; executors.executor_class('kubernetes')")
    assert "jinja2" in loaded  # the executor's own modules are there: the check would see an import
    assert "kubernetes" not in loaded


# -- --emit-manifests ------------------------------------------------------------------------------------------
def test_emit_manifests_writes_what_would_be_submitted_without_a_cluster(tmp_path, monkeypatch):
    """No cluster and no kubeconfig: every job becomes a YAML file and is reported as not submitted.

    A train job also writes its predict and fidelity jobs' manifests: the
    harness never runs a job whose train job did not succeed.
    """
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    out = tmp_path / "manifests"
    said: list[str] = []
    executor = KubernetesExecutor(ExecutorContext(tmp_path, tmp_path, None, said.append),
                                  {"emit_manifests": str(out)})
    executor.check()
    results = [executor.run(spec(b, "train"), lambda *_: None) for b in ("tensorflow", "cntk")]
    executor.cancel_all()
    executor.close()

    assert all(r.state is JobState.SKIPPED and "--emit-manifests" in r.reason for r in results)
    written = sorted(out.glob("*.yaml"))
    assert [p.stem for p in written] == sorted(job_name("20260101-120000-abcd", b, p)
                                               for b in ("tensorflow", "cntk")
                                               for p in ("train", "predict", "fidelity"))
    for path in written:
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), SUPPORTED_VERSIONS[-1], strict=True)
    assert any("nothing is submitted" in line for line in said)


def test_emit_manifests_shows_the_gpu_quantity_node_selector_and_tolerations(tmp_path, monkeypatch):
    """Issue 28 item 3: what a GPU node pool needs is in the emitted manifests and in one line on the terminal."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    said: list[str] = []
    executor = KubernetesExecutor(ExecutorContext(tmp_path, tmp_path, None, said.append), {
        "emit_manifests": str(tmp_path / "out"), "k8s_gpus": "1", "k8s_node_selector": "pool=gpu",
        "k8s_toleration": "dedicated=ml:NoSchedule", "k8s_arch": "amd64"})
    executor.check()
    executor.prepare([get("jax")])
    executor.run(spec("jax", "train"), lambda *_: None)
    executor.close()

    text = (tmp_path / "out" / f"{job_name('20260101-120000-abcd', 'jax', 'train')}.yaml").read_text()
    assert "nvidia.com/gpu: '1'" in text  # a quoted string, as the API's schema wants it
    manifest = yaml.safe_load(text)
    assert pod_spec(manifest)["nodeSelector"] == {"pool": "gpu"}
    assert {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"} in pod_spec(manifest)[
        "tolerations"]
    assert ("kbench-keras3:0.1.0 jobs (jax): 2 CPU, 4Gi, 1 nvidia.com/gpu on nodes with kubernetes.io/arch in "
            "(amd64), pool=gpu, tolerating dedicated=ml:NoSchedule, nvidia.com/gpu:NoSchedule") in said


# -- rules the schema cannot express: the cluster set-up ------------------------------------------------------
def by_kind(documents: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in documents}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_claim_binds_the_shared_volume_read_write_many(overlay):
    docs = by_kind(kustomize(overlay))
    volume, claim = docs["PersistentVolume"], docs["PersistentVolumeClaim"]
    assert volume["spec"]["accessModes"] == claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert volume["spec"]["claimRef"] == {"namespace": claim["metadata"]["namespace"],
                                          "name": claim["metadata"]["name"]}
    assert volume["spec"]["storageClassName"] == claim["spec"]["storageClassName"] == ""
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert claim["metadata"]["name"] == settings().pvc
    assert claim["metadata"]["namespace"] == settings().namespace


def test_the_nfs_volume_finds_files_other_nodes_just_wrote():
    volume = by_kind(kustomize("k8s/nfs"))["PersistentVolume"]
    assert "nfs" in volume["spec"] and "lookupcache=positive" in volume["spec"]["mountOptions"]


def test_the_role_grants_what_the_executor_checks_and_nothing_more():
    docs = by_kind(kustomize("k8s/nfs"))
    granted = {(verb, resource.split("/")[0], group, resource.split("/")[1] if "/" in resource else "")
               for rule in docs["Role"]["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    optional = {("get", "persistentvolumeclaims", "", ""), ("create", "pods", "", ""),  # the pod dry run
                ("list", "resourcequotas", "", "")}  # the room for jobs (issue 29 item 1)
    assert granted == set(PERMISSIONS) | optional
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": docs["Role"]["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": docs["ServiceAccount"]["metadata"]["name"],
                                    "namespace": "kbench"}]


def test_the_namespace_enforces_the_restricted_standard():
    labels = by_kind(kustomize("k8s/nfs"))["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_exit_code_rule_carries_empty_pod_conditions_for_the_oldest_schemas():
    """The 1.27 and 1.28 schemas require onPodConditions in every rule; the API server reads [] as absent."""
    manifest = render()
    rule = manifest["spec"]["podFailurePolicy"]["rules"][1]
    assert rule["onPodConditions"] == []
    del rule["onPodConditions"]
    with pytest.raises(kubernetes_validate.ValidationError, match="onPodConditions"):
        kubernetes_validate.validate(manifest, "1.27", strict=True)
    kubernetes_validate.validate(manifest, "1.29", strict=True)
