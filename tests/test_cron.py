"""Tests for the CronJob manifests: cron/base, cron/overlays/kubesphere and render_manifests.

Every manifest is checked offline against the Kubernetes API schema of its kind, using the
models of the `kubernetes` client. Those models accept unknown keys and snake_case names, so
`schema_errors` walks each document itself: every key must be a camelCase field of the model,
every value of the field's type, every required field present. The kustomizations are built
by a small Python builder that handles the fields this repository uses, and compared with
`kubectl kustomize` where kubectl is installed.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchalert.config import load_job
from batchalert.cron import DEFAULT_IMAGE, render_manifests, validate_schedule
from batchalert.errors import ConfigError

kubernetes_client = pytest.importorskip(
    "kubernetes.client", reason="the schema checks need the `kubernetes` package (test extra)"
)

REPO = Path(__file__).resolve().parents[1]
CRON = REPO / "cron"
BASE = CRON / "base"
OVERLAY = CRON / "overlays" / "kubesphere"
KUSTOMIZATIONS = (BASE, OVERLAY)
SCHEDULE = "*/5 * * * *"
SCHEDULE_INTERVAL_SECONDS = 300
KAFKA_FILES_DIR = "/etc/batchalert/kafka"
JOB_FILE_PATH = "/etc/batchalert/job.yaml"
NAME_LABEL = "app.kubernetes.io/name"

# apiVersion of each kind the manifests may contain; the model class is "V1" + kind.
API_VERSIONS = {
    "Namespace": "v1",
    "ServiceAccount": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "CronJob": "batch/v1",
    "Job": "batch/v1",
}
CLUSTER_SCOPED_KINDS = frozenset({"Namespace"})
WORKLOAD_KINDS = frozenset({"CronJob", "Job"})
PRIMITIVE_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "bytes": (str,),  # base64 text in YAML
    "datetime": (str, datetime),
    "date": (str, date),
}
LIST_TYPE = re.compile(r"(?:list|List)\[(?P<item>.+)\]")
DICT_TYPE = re.compile(r"(?:dict\(str, (?P<old>.+)\)|Dict\[str, (?P<new>.+)\])")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Keys that must never carry a literal value in a job file: it would sit in a ConfigMap.
SECRET_KEY = re.compile(r"(password|passwd|token|secret|webhook_url)$", re.IGNORECASE)
PRIVATE_KEY_MARK = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")

Document = dict[str, Any]


# Schema validation ---------------------------------------------------------------------------


def schema_errors(document: Document) -> list[str]:
    """List every way `document` differs from the API schema of its kind; empty if valid."""
    kind = document.get("kind")
    expected_version = API_VERSIONS.get(str(kind))
    if expected_version is None:
        return [f"kind {kind!r} is not in API_VERSIONS of this test; add it"]
    if document.get("apiVersion") != expected_version:
        return [f"{kind}: apiVersion {document.get('apiVersion')!r}, expected {expected_version!r}"]

    errors: list[str] = []
    _check_value(document, f"V1{kind}", str(kind), errors)
    name = document.get("metadata", {}).get("name")
    if not isinstance(name, str) or not DNS_SUBDOMAIN.fullmatch(name):
        errors.append(f"{kind}.metadata.name: {name!r} is not a DNS-1123 subdomain")
    return errors


def _check_value(value: Any, type_name: str, path: str, errors: list[str]) -> None:
    list_match = LIST_TYPE.fullmatch(type_name)
    dict_match = DICT_TYPE.fullmatch(type_name)
    if list_match:
        _check_list(value, list_match["item"], path, errors)
    elif dict_match:
        _check_dict(value, dict_match["old"] or dict_match["new"], path, errors)
    elif type_name == "object":
        return  # int-or-string and free-form fields
    elif type_name in PRIMITIVE_TYPES:
        _check_primitive(value, type_name, path, errors)
    else:
        _check_model(value, getattr(kubernetes_client, type_name), path, errors)


def _check_list(value: Any, item_type: str, path: str, errors: list[str]) -> None:
    if not isinstance(value, list):
        errors.append(f"{path}: expected a list, got {type(value).__name__}")
        return
    for index, item in enumerate(value):
        _check_value(item, item_type, f"{path}[{index}]", errors)


def _check_dict(value: Any, item_type: str, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a mapping, got {type(value).__name__}")
        return
    for key, item in value.items():
        if not isinstance(key, str):
            errors.append(f"{path}: key {key!r} is not a string")
        _check_value(item, item_type, f"{path}[{key!r}]", errors)


def _check_primitive(value: Any, type_name: str, path: str, errors: list[str]) -> None:
    # bool is a subclass of int, so `true` would pass as an int without the first test.
    wrong_bool = isinstance(value, bool) and type_name != "bool"
    if wrong_bool or not isinstance(value, PRIMITIVE_TYPES[type_name]):
        errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")


def _check_model(value: Any, model: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {model.__name__} mapping, got {type(value).__name__}")
        return
    attribute_of_key = {key: attribute for attribute, key in model.attribute_map.items()}
    for key, item in value.items():
        attribute = attribute_of_key.get(key)
        if attribute is None:
            errors.append(f"{path}.{key}: unknown field of {model.__name__}")
            continue
        _check_value(item, model.openapi_types[attribute], f"{path}.{key}", errors)
    for attribute in required_attributes(model):
        if model.attribute_map[attribute] not in value:
            errors.append(f"{path}: required field {model.attribute_map[attribute]} is missing")


def required_attributes(model: Any) -> list[str]:
    """Return the attribute names that `model` requires, for old and pydantic clients."""
    fields = getattr(model, "model_fields", None)
    if fields is not None:
        return [name for name, field in fields.items() if field.is_required()]

    # Clients before the pydantic models check required fields in their setters.
    configuration = kubernetes_client.Configuration()
    configuration.client_side_validation = False
    instance = model(local_vars_configuration=configuration)
    configuration.client_side_validation = True
    required = []
    for attribute in model.openapi_types:
        try:
            setattr(instance, attribute, None)
        except ValueError:
            required.append(attribute)
    return required


# A minimal Kustomize -------------------------------------------------------------------------

KUSTOMIZE_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "configMapGenerator",
        "generatorOptions",
        "images",
        "patches",
    }
)


def load_documents(path: Path) -> list[Document]:
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document is not None]


def build_kustomization(directory: Path) -> list[Document]:
    """Build `directory` as `kubectl kustomize` does for the fields in KUSTOMIZE_FIELDS."""
    kustomization = load_documents(directory / "kustomization.yaml")[0]
    unsupported = sorted(set(kustomization) - KUSTOMIZE_FIELDS)
    assert not unsupported, f"{directory}: extend build_kustomization to handle {unsupported}"
    hash_disabled = kustomization.get("generatorOptions", {}).get("disableNameSuffixHash")
    assert "configMapGenerator" not in kustomization or hash_disabled, (
        f"{directory}: the builder does not compute name hashes; set disableNameSuffixHash"
    )

    resources: list[Document] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources.extend(build_kustomization(path) if path.is_dir() else load_documents(path))
    for generator in kustomization.get("configMapGenerator", []):
        apply_config_map_generator(directory, generator, resources)
    for patch in kustomization.get("patches", []):
        apply_strategic_merge_patch(directory, patch, resources)
    for image in kustomization.get("images", []):
        apply_image(image, resources)
    if "namespace" in kustomization:
        apply_namespace(kustomization["namespace"], resources)
    return resources


def apply_config_map_generator(
    directory: Path, generator: dict[str, Any], resources: list[Document]
) -> None:
    data = {}
    for entry in generator.get("files", []):
        key, _, file_name = entry.rpartition("=")
        path = directory / file_name
        data[key or path.name] = path.read_bytes().decode("utf-8")
    for entry in generator.get("literals", []):
        key, _, value = entry.partition("=")
        data[key] = value
    labels = generator.get("options", {}).get("labels", {})

    behavior = generator.get("behavior", "create")
    if behavior == "create":
        metadata: dict[str, Any] = {"name": generator["name"]}
        if labels:
            metadata["labels"] = dict(labels)
        resources.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
        resources[-1]["data"] = data
        return
    existing = find_resource(resources, "ConfigMap", generator["name"])
    existing["data"] = data if behavior == "replace" else {**existing.get("data", {}), **data}
    if labels:
        existing["metadata"]["labels"] = {**existing["metadata"].get("labels", {}), **labels}


def apply_strategic_merge_patch(
    directory: Path, entry: dict[str, Any], resources: list[Document]
) -> None:
    patch = yaml.safe_load(entry["patch"]) if "patch" in entry else None
    if patch is None:
        patch = load_documents(directory / entry["path"])[0]
    target = find_resource(resources, patch["kind"], patch["metadata"]["name"])
    merged = merge_patch(target, patch)
    target.clear()
    target.update(merged)


def merge_patch(original: Any, patch: Any) -> Any:
    """Merge as a strategic merge patch does: maps by key, lists of named items by name."""
    if isinstance(original, dict) and isinstance(patch, dict):
        merged = dict(original)
        for key, value in patch.items():
            merged[key] = merge_patch(original[key], value) if key in original else value
        return merged
    if _is_named_list(original) and _is_named_list(patch):
        merged_list = list(original)
        position = {item["name"]: index for index, item in enumerate(original)}
        for item in patch:
            if item["name"] in position:
                index = position[item["name"]]
                merged_list[index] = merge_patch(merged_list[index], item)
            else:
                merged_list.append(item)
        return merged_list
    return patch


def _is_named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def apply_image(image: dict[str, str], resources: list[Document]) -> None:
    for container in iter_containers(resources):
        repository, tag = split_image(container["image"])
        if repository == image["name"]:
            new_tag = f":{image['newTag']}" if "newTag" in image else tag
            container["image"] = image.get("newName", repository) + new_tag


def split_image(reference: str) -> tuple[str, str]:
    """Split an image reference into repository and the `:tag` or `@digest` after it."""
    if "@" in reference:
        repository, digest = reference.split("@", 1)
        return repository, f"@{digest}"
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon:]
    return reference, ""


def apply_namespace(namespace: str, resources: list[Document]) -> None:
    for resource in resources:
        if resource["kind"] not in CLUSTER_SCOPED_KINDS:
            resource["metadata"]["namespace"] = namespace


def find_resource(resources: list[Document], kind: str, name: str) -> Document:
    for resource in resources:
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise AssertionError(f"no {kind} named {name!r} among the resources")


def iter_containers(resources: list[Document]) -> Iterator[dict[str, Any]]:
    for resource in resources:
        if resource["kind"] in WORKLOAD_KINDS:
            spec = pod_spec(resource)
            yield from spec.get("initContainers", [])
            yield from spec.get("containers", [])


def pod_spec(resource: Document) -> dict[str, Any]:
    spec: dict[str, Any]
    if resource["kind"] == "CronJob":
        spec = resource["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif resource["kind"] == "Job":
        spec = resource["spec"]["template"]["spec"]
    else:
        raise AssertionError(f"{resource['kind']} has no pod template")
    return spec


def by_kind(resources: list[Document]) -> dict[str, Document]:
    kinds = [resource["kind"] for resource in resources]
    assert len(kinds) == len(set(kinds)), f"expected one resource per kind, got {kinds}"
    return {resource["kind"]: resource for resource in resources}


def keyed(resources: list[Document]) -> dict[tuple[str, str], Document]:
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}


def kubectl_kustomize(directory: Path) -> list[Document]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; only the Python build is checked")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


# Fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> dict[str, Document]:
    return by_kind(build_kustomization(BASE))


@pytest.fixture(scope="module")
def overlay() -> dict[str, Document]:
    return by_kind(build_kustomization(OVERLAY))


@pytest.fixture(scope="module")
def rendered() -> dict[str, Document]:
    stream = render_manifests(OVERLAY / "job.yaml", SCHEDULE)
    return by_kind(list(yaml.safe_load_all(stream)))


@pytest.fixture(params=["base", "overlay", "rendered"])
def manifests(request: pytest.FixtureRequest) -> dict[str, Document]:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def write_job(directory: Path, text: str) -> Path:
    path = directory / "job.yaml"
    path.write_bytes(text.encode("utf-8"))
    return path


MINIMAL_JOB = "name: demo\nsource:\n  topic: logs\n"


# The validator itself ------------------------------------------------------------------------


class TestSchemaValidator:
    def test_misspelled_field_rejected(self, base: dict[str, Document]) -> None:
        cronjob = copy.deepcopy(base["CronJob"])
        cronjob["spec"]["concurencyPolicy"] = cronjob["spec"].pop("concurrencyPolicy")

        errors = schema_errors(cronjob)

        assert errors == ["CronJob.spec.concurencyPolicy: unknown field of V1CronJobSpec"]

    def test_nested_unknown_field_rejected(self, base: dict[str, Document]) -> None:
        cronjob = copy.deepcopy(base["CronJob"])
        pod_spec(cronjob)["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True

        errors = schema_errors(cronjob)

        assert len(errors) == 1
        assert "securityContext.readOnlyRootFileSystem: unknown field" in errors[0]

    def test_snake_case_name_rejected(self, base: dict[str, Document]) -> None:
        cronjob = copy.deepcopy(base["CronJob"])
        cronjob["spec"]["starting_deadline_seconds"] = cronjob["spec"].pop(
            "startingDeadlineSeconds"
        )

        assert schema_errors(cronjob) == [
            "CronJob.spec.starting_deadline_seconds: unknown field of V1CronJobSpec"
        ]

    def test_missing_required_field_reported(self, base: dict[str, Document]) -> None:
        cronjob = copy.deepcopy(base["CronJob"])
        del cronjob["spec"]["schedule"]

        assert schema_errors(cronjob) == ["CronJob.spec: required field schedule is missing"]

    def test_wrong_type_reported(self, base: dict[str, Document]) -> None:
        cronjob = copy.deepcopy(base["CronJob"])
        cronjob["spec"]["startingDeadlineSeconds"] = "120"
        cronjob["spec"]["suspend"] = 1

        errors = schema_errors(cronjob)

        assert "CronJob.spec.startingDeadlineSeconds: expected int, got str '120'" in errors
        assert "CronJob.spec.suspend: expected bool, got int 1" in errors

    def test_boolean_rejected_as_integer(self, base: dict[str, Document]) -> None:
        cronjob = copy.deepcopy(base["CronJob"])
        cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] = True

        errors = schema_errors(cronjob)

        assert errors == ["CronJob.spec.jobTemplate.spec.backoffLimit: expected int, got bool True"]

    def test_wrong_api_version_reported(self, base: dict[str, Document]) -> None:
        cronjob = copy.deepcopy(base["CronJob"])
        cronjob["apiVersion"] = "batch/v1beta1"

        assert schema_errors(cronjob) == [
            "CronJob: apiVersion 'batch/v1beta1', expected 'batch/v1'"
        ]

    def test_unknown_kind_reported(self) -> None:
        document = {"apiVersion": "v1", "kind": "Sevice", "metadata": {"name": "x"}}

        assert schema_errors(document) == [
            "kind 'Sevice' is not in API_VERSIONS of this test; add it"
        ]


# Schema of every manifest --------------------------------------------------------------------


class TestSchema:
    def test_manifests_match_api_schema(self, manifests: dict[str, Document]) -> None:
        for kind, document in manifests.items():
            assert schema_errors(document) == [], kind

    def test_every_resource_file_matches_schema(self) -> None:
        files = [path for path in CRON.rglob("*.yaml") if path.name not in NON_RESOURCE_FILES]
        assert files
        for path in files:
            for document in load_documents(path):
                assert schema_errors(document) == [], path

    def test_yaml_files_all_referenced(self) -> None:
        referenced = set()
        for directory in KUSTOMIZATIONS:
            kustomization = load_documents(directory / "kustomization.yaml")[0]
            entries = list(kustomization.get("resources", []))
            for generator in kustomization.get("configMapGenerator", []):
                entries += [entry.rpartition("=")[2] for entry in generator.get("files", [])]
            entries += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
            referenced |= {(directory / entry).resolve() for entry in entries}
            referenced.add((directory / "kustomization.yaml").resolve())

        unreferenced = [p for p in CRON.rglob("*.yaml") if p.resolve() not in referenced]

        assert unreferenced == []

    @pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=["base", "overlay"])
    def test_kustomization_fields_known(self, directory: Path) -> None:
        kustomization = load_documents(directory / "kustomization.yaml")[0]

        assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
        assert kustomization["kind"] == "Kustomization"
        assert set(kustomization) <= KUSTOMIZE_FIELDS

    @pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=["base", "overlay"])
    def test_python_build_matches_kubectl(self, directory: Path) -> None:
        expected = keyed(kubectl_kustomize(directory))

        assert keyed(build_kustomization(directory)) == expected

    def test_builder_applies_patch_like_kubectl(self, tmp_path: Path) -> None:
        # Kustomize accepts only relative paths to other kustomizations, so the tree is copied.
        shutil.copytree(CRON, tmp_path / "cron")
        patched = tmp_path / "cron" / "overlays" / "patched"
        patched.mkdir()
        (patched / "kustomization.yaml").write_text(PATCH_KUSTOMIZATION, encoding="utf-8")
        (patched / "schedule.yaml").write_text(PATCH_TEXT, encoding="utf-8")

        built = keyed(build_kustomization(patched))

        assert built == keyed(kubectl_kustomize(patched))
        cronjob = built[("CronJob", "batchalert")]
        assert cronjob["spec"]["schedule"] == "*/10 * * * *"
        (container,) = pod_spec(cronjob)["containers"]
        assert container["resources"]["limits"] == {"cpu": "1", "memory": "768Mi"}


NON_RESOURCE_FILES = frozenset({"kustomization.yaml", "job.yaml"})
PATCH_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../kubesphere]
patches:
  - path: schedule.yaml
"""
PATCH_TEXT = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: batchalert
spec:
  schedule: "*/10 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: batchalert
              resources:
                limits:
                  memory: 768Mi
"""


# What the CronJob promises -------------------------------------------------------------------


class TestCronJob:
    def test_forbids_concurrent_runs(self, manifests: dict[str, Document]) -> None:
        assert manifests["CronJob"]["spec"]["concurrencyPolicy"] == "Forbid"

    def test_schedule_every_five_minutes(self, manifests: dict[str, Document]) -> None:
        assert manifests["CronJob"]["spec"]["schedule"] == SCHEDULE

    def test_history_and_deadlines_set(self, manifests: dict[str, Document]) -> None:
        spec = manifests["CronJob"]["spec"]
        job_spec = spec["jobTemplate"]["spec"]

        assert 0 < spec["startingDeadlineSeconds"] < SCHEDULE_INTERVAL_SECONDS
        assert spec["successfulJobsHistoryLimit"] >= 1
        assert spec["failedJobsHistoryLimit"] >= 1
        assert 0 <= job_spec["backoffLimit"] <= 2
        assert job_spec["ttlSecondsAfterFinished"] > 0

    def test_stuck_run_ends_before_next(self, manifests: dict[str, Document]) -> None:
        job_spec = manifests["CronJob"]["spec"]["jobTemplate"]["spec"]
        grace = job_spec["template"]["spec"]["terminationGracePeriodSeconds"]

        assert job_spec["activeDeadlineSeconds"] + grace < SCHEDULE_INTERVAL_SECONDS

    def test_pod_never_restarts(self, manifests: dict[str, Document]) -> None:
        assert pod_spec(manifests["CronJob"])["restartPolicy"] == "Never"

    def test_container_runs_job_file(self, manifests: dict[str, Document]) -> None:
        (container,) = pod_spec(manifests["CronJob"])["containers"]

        assert container["args"] == ["run", "--job", JOB_FILE_PATH]
        assert "command" not in container

    def test_resources_set(self, manifests: dict[str, Document]) -> None:
        (container,) = pod_spec(manifests["CronJob"])["containers"]
        resources = container["resources"]

        assert set(resources["requests"]) == {"cpu", "memory"}
        assert set(resources["limits"]) == {"cpu", "memory"}
        assert resources["limits"]["memory"] == "512Mi"

    def test_pod_security_restricted(self, manifests: dict[str, Document]) -> None:
        spec = pod_spec(manifests["CronJob"])
        pod_context = spec["securityContext"]
        (container,) = spec["containers"]
        context = container["securityContext"]

        assert pod_context["runAsNonRoot"] is True
        assert pod_context["runAsUser"] == 65532
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert "privileged" not in context
        assert not any(key.startswith("host") for key in spec)

    def test_no_service_account_token(self, manifests: dict[str, Document]) -> None:
        spec = pod_spec(manifests["CronJob"])

        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == manifests["ServiceAccount"]["metadata"]["name"]
        assert manifests["ServiceAccount"]["automountServiceAccountToken"] is False

    def test_volumes_mounted(self, manifests: dict[str, Document]) -> None:
        spec = pod_spec(manifests["CronJob"])
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        (container,) = spec["containers"]
        mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}

        assert mounts[JOB_FILE_PATH]["subPath"] == "job.yaml"
        job_volume = volumes[mounts[JOB_FILE_PATH]["name"]]
        assert job_volume["configMap"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
        kafka_volume = volumes[mounts[KAFKA_FILES_DIR]["name"]]
        assert kafka_volume["secret"]["optional"] is True
        assert all(mount["readOnly"] for path, mount in mounts.items() if path != "/tmp")

    def test_secrets_optional_and_shared(self, manifests: dict[str, Document]) -> None:
        spec = pod_spec(manifests["CronJob"])
        (container,) = spec["containers"]
        references = [entry["valueFrom"]["secretKeyRef"] for entry in container["env"]]
        kafka_secret = next(v for v in spec["volumes"] if "secret" in v)["secret"]["secretName"]

        assert references
        assert all(reference["optional"] is True for reference in references)
        assert kafka_secret in {reference["name"] for reference in references}

    def test_everything_labelled(self, manifests: dict[str, Document]) -> None:
        cronjob = manifests["CronJob"]
        job_template = cronjob["spec"]["jobTemplate"]
        labelled = [*manifests.values(), job_template, job_template["spec"]["template"]]

        for item in labelled:
            assert item["metadata"]["labels"][NAME_LABEL] == "batchalert"


# The job file in the ConfigMap ---------------------------------------------------------------


def secret_fields(value: Any, path: str = "") -> list[str]:
    """Return the paths of keys that look like secrets and hold a literal value."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if SECRET_KEY.search(str(key)) and isinstance(item, str) and item:
                found.append(child)
            found.extend(secret_fields(item, child))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(secret_fields(item, f"{path}[{index}]"))
    return found


class TestConfigMap:
    @pytest.mark.parametrize(
        ("fixture", "job_file"),
        [
            ("base", BASE / "job.yaml"),
            ("overlay", OVERLAY / "job.yaml"),
            ("rendered", OVERLAY / "job.yaml"),
        ],
    )
    def test_job_file_byte_equal(
        self, request: pytest.FixtureRequest, fixture: str, job_file: Path
    ) -> None:
        config_map = request.getfixturevalue(fixture)["ConfigMap"]

        assert config_map["data"]["job.yaml"].encode("utf-8") == job_file.read_bytes()

    def test_contains_only_job_file(self, manifests: dict[str, Document]) -> None:
        config_map = manifests["ConfigMap"]

        assert list(config_map["data"]) == ["job.yaml"]
        assert "binaryData" not in config_map

    def test_contains_no_secrets(self, manifests: dict[str, Document]) -> None:
        text = manifests["ConfigMap"]["data"]["job.yaml"]

        assert secret_fields(yaml.safe_load(text)) == []
        assert PRIVATE_KEY_MARK.search(text) is None

    @pytest.mark.parametrize("job_file", [BASE / "job.yaml", OVERLAY / "job.yaml"])
    def test_job_file_valid_for_model(self, job_file: Path) -> None:
        job = load_job(job_file, environ={})

        assert job.receivers

    def test_secret_detector_finds_literal(self) -> None:
        job = {"source": {"security": {"password": "hunter2", "password_file": "/x"}}}

        assert secret_fields(job) == ["source.security.password"]


# The kubesphere overlay ----------------------------------------------------------------------


class TestKubesphereOverlay:
    def test_namespaced_resources_in_batchalert(self, overlay: dict[str, Document]) -> None:
        namespace = overlay["Namespace"]["metadata"]["name"]

        assert namespace == "batchalert"
        for kind, resource in overlay.items():
            if kind not in CLUSTER_SCOPED_KINDS:
                assert resource["metadata"]["namespace"] == namespace, kind

    def test_namespace_enforces_restricted(self, overlay: dict[str, Document]) -> None:
        labels = overlay["Namespace"]["metadata"]["labels"]

        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    def test_job_reads_strimzi_logs_topic(self, overlay: dict[str, Document]) -> None:
        job = yaml.safe_load(overlay["ConfigMap"]["data"]["job.yaml"])

        assert job["source"]["brokers"] == ["kafka-logs-receiver-kafka-brokers.default.svc:9092"]
        assert job["source"]["topic"] == "logs"

    def test_job_alerts_wordpress_404(self, overlay: dict[str, Document]) -> None:
        job = yaml.safe_load(overlay["ConfigMap"]["data"]["job.yaml"])
        (rule,) = job["rules"]
        (receiver,) = job["receivers"]

        assert rule["status"] == [404]
        assert re.search(rule["namespace"]["include"][0], "demo-project")
        assert re.search(rule["pod"]["include"][0], "wordpress-v1-f54f697c5-hdn2z")
        assert receiver["type"] == "notification-manager"
        assert receiver["url"] == (
            "http://notification-manager-svc.kubesphere-monitoring-system.svc:19093/api/v2/alerts"
        )

    def test_image_points_at_registry(self, overlay: dict[str, Document]) -> None:
        (container,) = pod_spec(overlay["CronJob"])["containers"]

        assert container["image"] == "registry.example.com/batchalert:0.1.0"


# render_manifests ----------------------------------------------------------------------------


class TestRenderManifests:
    def test_documents_in_order(self) -> None:
        stream = render_manifests(OVERLAY / "job.yaml", SCHEDULE)

        kinds = [document["kind"] for document in yaml.safe_load_all(stream)]

        assert kinds == ["ServiceAccount", "ConfigMap", "CronJob"]

    def test_matches_kustomize_base(self, base: dict[str, Document]) -> None:
        image = pod_spec(base["CronJob"])["containers"][0]["image"]
        expected = copy.deepcopy(base)
        apply_namespace("monitoring", list(expected.values()))

        stream = render_manifests(
            BASE / "job.yaml", SCHEDULE, name="batchalert", namespace="monitoring", image=image
        )

        assert by_kind(list(yaml.safe_load_all(stream))) == expected

    def test_name_from_job_file(self, rendered: dict[str, Document]) -> None:
        cronjob = rendered["CronJob"]

        assert cronjob["metadata"]["name"] == "batchalert-wordpress-404"
        assert rendered["ConfigMap"]["metadata"]["name"] == "batchalert-wordpress-404-job"
        assert cronjob["metadata"]["labels"]["app.kubernetes.io/instance"] == (
            "batchalert-wordpress-404"
        )

    def test_prefixed_name_kept(self, tmp_path: Path) -> None:
        job_file = write_job(tmp_path, "name: batchalert-nginx\n")

        documents = list(yaml.safe_load_all(render_manifests(job_file, SCHEDULE)))

        assert documents[2]["metadata"]["name"] == "batchalert-nginx"

    def test_options_reach_manifests(self, tmp_path: Path) -> None:
        job_file = write_job(tmp_path, MINIMAL_JOB)

        stream = render_manifests(
            job_file,
            "0 3 * * MON-FRI",
            name="nightly",
            namespace="logging",
            image="registry.example.com/batchalert@sha256:0123abcd",
            kafka_secret="kafka-user",
            receiver_secret="slack",
            time_zone="Asia/Shanghai",
            active_deadline_seconds=1800,
        )
        cronjob = by_kind(list(yaml.safe_load_all(stream)))["CronJob"]
        spec = pod_spec(cronjob)

        assert schema_errors(cronjob) == []
        assert cronjob["metadata"]["namespace"] == "logging"
        assert cronjob["spec"]["schedule"] == "0 3 * * MON-FRI"
        assert cronjob["spec"]["timeZone"] == "Asia/Shanghai"
        assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 1800
        assert spec["containers"][0]["image"] == "registry.example.com/batchalert@sha256:0123abcd"
        assert {e["valueFrom"]["secretKeyRef"]["name"] for e in spec["containers"][0]["env"]} == {
            "kafka-user",
            "slack",
        }
        assert spec["volumes"][1]["secret"]["secretName"] == "kafka-user"

    def test_default_image_is_versioned(self, rendered: dict[str, Document]) -> None:
        (container,) = pod_spec(rendered["CronJob"])["containers"]

        assert container["image"] == DEFAULT_IMAGE

    def test_validate_called_with_path(self, tmp_path: Path) -> None:
        job_file = write_job(tmp_path, MINIMAL_JOB)
        calls: list[Path] = []

        render_manifests(job_file, SCHEDULE, validate=calls.append)

        assert calls == [job_file]

    def test_job_model_as_validator(self, tmp_path: Path) -> None:
        job_file = write_job(tmp_path, "name: demo\nsource: {brokers: [kafka:9092]}\n")

        with pytest.raises(ConfigError, match=r"source\.topic"):
            render_manifests(job_file, SCHEDULE, validate=lambda path: load_job(path, environ={}))

    def test_validate_error_propagates(self, tmp_path: Path) -> None:
        job_file = write_job(tmp_path, MINIMAL_JOB)

        def reject(path: Path) -> None:
            raise ConfigError(f"job file {path}: rules is missing")

        with pytest.raises(ConfigError, match="rules is missing"):
            render_manifests(job_file, SCHEDULE, validate=reject)

    @pytest.mark.parametrize(
        "text",
        [
            "name: crlf\r\nnote: 'a: b # c'\r\n",
            'name: tabs\nnote: "\\t"\n# trailing spaces   \n',
            "name: kept\n\n\n\n",
            "name: no-newline",
            "  name: indented\n  x: 1\n",
            "name: doc\nnote: |\n  ---\n  ...\n",
            "name: unicode\nnote: 日志告警 ü \u2028 end\n",
            "name: next-line\n# NEL ends this comment\x85\n",
            "name: quotes\nnote: \"{{ '{%' }}\" # '\"\n",
        ],
        ids=[
            "crlf",
            "trailing-space",
            "kept-newlines",
            "no-final-newline",
            "indented",
            "document-markers",
            "unicode",
            "next-line",
            "quotes",
        ],
    )
    def test_job_text_round_trips(self, tmp_path: Path, text: str) -> None:
        job_file = write_job(tmp_path, text)

        stream = render_manifests(job_file, SCHEDULE, name="roundtrip")
        config_map = by_kind(list(yaml.safe_load_all(stream)))["ConfigMap"]

        assert config_map["data"]["job.yaml"] == text


class TestRenderErrors:
    @pytest.mark.parametrize(
        ("schedule", "message"),
        [
            ("*/5 * * *", "it has 4 fields, not 5"),
            ("*/5 * * * * *", "it has 6 fields, not 5"),
            ("60 * * * *", "in the minute field '60', '60' is not in 0-59"),
            ("* 24 * * *", "in the hour field '24'"),
            ("* * 0 * *", "in the day-of-month field '0'"),
            ("* * * 13 *", "in the month field '13', '13' is not in 1-12 or JAN-DEC"),
            ("* * * * 7", "in the day-of-week field '7', '7' is not in 0-6 or SUN-SAT"),
            ("*/0 * * * *", "the step after '/' must be a number from 1"),
            ("30-10 * * * *", "the range starts after it ends"),
            ("? * * * *", "in the minute field '?'"),
            ("TZ=UTC */5 * * * *", "Remove the prefix and set the time zone option"),
            ("@every 5m", "it has 2 fields, not 5"),
        ],
    )
    def test_invalid_schedule(self, tmp_path: Path, schedule: str, message: str) -> None:
        job_file = write_job(tmp_path, MINIMAL_JOB)

        with pytest.raises(ConfigError) as caught:
            render_manifests(job_file, schedule)

        assert repr(schedule) in str(caught.value)
        assert message in str(caught.value)

    @pytest.mark.parametrize(
        "schedule",
        ["*/5 * * * *", "0 3 * * MON-FRI", "0,30 8-18/2 1 jan,jul ?", "5/15 * * * sun", "@hourly"],
    )
    def test_valid_schedule(self, schedule: str) -> None:
        validate_schedule(schedule)

    @pytest.mark.parametrize(
        ("option", "value", "message"),
        [
            ("name", "WordPress_404", "invalid name 'WordPress_404'"),
            ("name", "a" * 53, "at most 52"),
            ("namespace", "-logs", "invalid namespace '-logs'"),
            ("kafka_secret", "Kafka", "invalid Kafka Secret name 'Kafka'"),
            ("receiver_secret", "a_b", "invalid receiver Secret name 'a_b'"),
            ("image", "batch alert:1", "invalid image 'batch alert:1'"),
            ("time_zone", "UTC+8 hours", "invalid time zone 'UTC+8 hours'"),
            ("active_deadline_seconds", 0, "invalid active deadline 0"),
        ],
    )
    def test_invalid_option(self, tmp_path: Path, option: str, value: object, message: str) -> None:
        job_file = write_job(tmp_path, MINIMAL_JOB)

        with pytest.raises(ConfigError, match=re.escape(message)):
            render_manifests(job_file, SCHEDULE, **{option: value})  # type: ignore[arg-type]

    def test_missing_job_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "absent.yaml"

        with pytest.raises(ConfigError, match=f"cannot read job file {re.escape(str(missing))}"):
            render_manifests(missing, SCHEDULE)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("source: {topic: logs}\n", "has no `name`"),
            ("name: [a, b]\n", "has no `name`"),
            ("- name: demo\n", "must contain a mapping"),
            ("name: demo\nsource: {topic: [\n", "is not valid YAML"),
        ],
    )
    def test_invalid_job_file(self, tmp_path: Path, text: str, message: str) -> None:
        job_file = write_job(tmp_path, text)

        with pytest.raises(ConfigError, match=re.escape(message)):
            render_manifests(job_file, SCHEDULE)

    def test_job_file_not_utf8(self, tmp_path: Path) -> None:
        job_file = tmp_path / "job.yaml"
        job_file.write_bytes(b"name: caf\xe9\n")

        with pytest.raises(ConfigError, match="not valid UTF-8 at byte 9"):
            render_manifests(job_file, SCHEDULE)

    def test_job_file_too_large(self, tmp_path: Path) -> None:
        job_file = write_job(tmp_path, "name: big\n" + "#" * (1024 * 1024) + "\n")

        with pytest.raises(
            ConfigError, match="too large for a ConfigMap: 1048587 bytes, the limit is 1048576"
        ):
            render_manifests(job_file, SCHEDULE)

    def test_literal_kafka_password(self, tmp_path: Path) -> None:
        job_file = write_job(tmp_path, "name: demo\nsource:\n  security:\n    password: hunter2\n")

        with pytest.raises(ConfigError) as caught:
            render_manifests(job_file, SCHEDULE)

        assert "source.security.password is written inline" in str(caught.value)
        assert "hunter2" not in str(caught.value)

    @pytest.mark.parametrize(
        ("field", "path"),
        [
            ("ca_file", "/etc/ssl/ca.crt"),
            ("ca_file", "/etc/batchalert/kafka/../job.yaml"),
            ("key_file", "/etc/batchalert/kafka"),
            ("password", "/run/secrets/kafka-password"),
        ],
    )
    def test_kafka_file_outside_mount(self, tmp_path: Path, field: str, path: str) -> None:
        value = f"{{file: {path}}}" if field == "password" else path
        job_file = write_job(tmp_path, f"name: demo\nsource:\n  security:\n    {field}: {value}\n")
        reported = f"{field}.file" if field == "password" else field

        with pytest.raises(ConfigError, match=re.escape(f"security.{reported} is {path!r}")):
            render_manifests(job_file, SCHEDULE)

    def test_kafka_file_inside_mount(self, tmp_path: Path) -> None:
        text = (
            "name: demo\nsource:\n  security:\n    ca_file: /etc/batchalert/kafka/ca.crt\n"
            "    username: {env: KAFKA_USERNAME}\n"
            "    password: {file: /etc/batchalert/kafka/password}\n"
        )
        job_file = write_job(tmp_path, text)

        stream = render_manifests(job_file, SCHEDULE)

        assert by_kind(list(yaml.safe_load_all(stream)))["ConfigMap"]["data"]["job.yaml"] == text

    def test_long_job_name(self, tmp_path: Path) -> None:
        job_file = write_job(tmp_path, f"name: {'a' * 45}\n")

        with pytest.raises(ConfigError, match="longer than 52 characters"):
            render_manifests(job_file, SCHEDULE)


# Characters a job file may hold: printable text of any script, tabs and the YAML line breaks.
_LINE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff")
    | st.sampled_from(["\t", " ", "#", ":", "'", '"', "|", ">", "-", "\x85", "\u2028"]),
    max_size=40,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    comments=st.lists(_LINE_TEXT, max_size=6),
    newline=st.sampled_from(["\n", "\r\n"]),
    indent=st.sampled_from(["", " ", "  "]),
    ending=st.sampled_from(["", "\n", "\n\n", "  \n", "\n\n\n"]),
)
def test_any_job_text_round_trips(
    tmp_path: Path, comments: list[str], newline: str, indent: str, ending: str
) -> None:
    lines = [f"{indent}name: demo", *(f"{indent}#{comment}" for comment in comments)]
    text = newline.join(lines) + ending
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = None
    assume(isinstance(parsed, dict) and parsed.get("name") == "demo")
    job_file = write_job(tmp_path, text)

    stream = render_manifests(job_file, SCHEDULE, name="property")

    assert by_kind(list(yaml.safe_load_all(stream)))["ConfigMap"]["data"]["job.yaml"] == text


@pytest.mark.parametrize(("schedule", "interval"), [
    ("* * * * *", 60), ("*/5 * * * *", 300), ("*/15 * * * *", 900), ("7 * * * *", 3600),
    ("0 */2 * * *", 7200), ("0 9 * * 1-5", None), ("@hourly", None),
])
def test_schedule_interval(schedule: str, interval: int | None) -> None:
    from batchalert.cron import schedule_interval_seconds

    assert schedule_interval_seconds(schedule) == interval


def test_deadline_follows_schedule() -> None:
    every_minute = yaml.safe_load_all(render_manifests(OVERLAY / "job.yaml", "* * * * *"))
    cronjob = next(doc for doc in every_minute if doc["kind"] == "CronJob")

    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 30


def test_deadline_too_long_for_schedule_is_rejected() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        render_manifests(OVERLAY / "job.yaml", "*/2 * * * *", active_deadline_seconds=240)
