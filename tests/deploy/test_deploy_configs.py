"""deploy/ agrees with the code: CLI commands, settings, launch flags, profiles, paths, COPY."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import Settings
from workers.agent.profiles import ModelProfile, profile_for
from workers.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
NAMESPACE = "qwen-fix"

SETTINGS = {name.upper() for name in Settings.model_fields}
NON_SETTINGS = {
    "DOCKER_HOST": "the Docker SDK's engine address, read by docker.from_env()",
    "TMPDIR": "where tempfile makes each sandbox's bind-mounted egress directory",
    "LOG_LEVEL": "read by the CLI before settings load",
    "DOCKER_GID": "compose interpolation only: the worker's extra group",
}
"""Variables the deploy files may set for qwen-fix that are not `Settings` fields."""
QWEN_FIX_SERVICES = ("web", "worker", "data-dir")
"""Compose services that run the qwen-fix image."""
EXPECTED_YAML = {
    "compose.yaml",
    "kubernetes/kustomization.yaml",
    "kubernetes/namespace.yaml",
    "kubernetes/secret-template.yaml",
    "kubernetes/configmap.yaml",
    "kubernetes/redis.yaml",
    "kubernetes/web.yaml",
    "kubernetes/worker.yaml",
    "kubernetes/vllm-lws.yaml",
    "kubernetes/docker-host/kustomization.yaml",
    "kubernetes/docker-host/worker-docker-host.yaml",
}
VLLM_SCRIPTS = (
    "fp8-one-node.sh",
    "30b-one-gpu.sh",
    "coder-next-one-gpu.sh",
    "qwen3.6-reasoning.sh",
)
SGLANG_SCRIPTS = (
    "fp8-tp8-ep2.sh",
    "fp8-deepep.sh",
    "30b-one-gpu.sh",
    "coder-next-one-gpu.sh",
    "qwen3.6-reasoning.sh",
)
LAUNCHES = (
    *(f"vllm/{name}" for name in (*VLLM_SCRIPTS, "bf16-two-nodes.sh")),
    *(f"sglang/{name}" for name in SGLANG_SCRIPTS),
    "kubernetes/vllm-lws.yaml",
)
"""Every way deploy/ starts a model server, as paths under deploy/."""
SERVERS = ("vllm", "sglang")
YARN_SWITCHES = {
    "vllm": ("--hf-overrides", "VLLM_ALLOW_LONG_MAX_MODEL_LEN", "MAX_MODEL_LEN"),
    "sglang": (
        "--json-model-override-args",
        "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN",
        "CONTEXT_LENGTH",
    ),
}
"""Per server: the flag carrying the rope override, the variable allowing a longer window, the
script's window variable."""


# --- helpers -------------------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[Any]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}|\$(\w+)")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$`, over nested values."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        found = env.get(name, "")
        if found:
            return found
        if match.group(2) == "?":
            raise LookupError(match.group(3))
        return match.group(3) or ""

    return _COMPOSE_VARIABLE.sub(substitute, value)


def compose(env: Mapping[str, str]) -> dict[str, Any]:
    [document] = yaml_documents(DEPLOY / "compose.yaml")
    result: dict[str, Any] = interpolate(document, env)
    return result


def filled_env() -> dict[str, str]:
    """env.example as a user fills it in: the blanks given plausible values."""
    env = read_env_file(DEPLOY / "env.example")
    env.update(APP_ID="12345", WEBHOOK_SECRET="s3cret", PRIVATE_KEY="pem", DOCKER_GID="998")
    return env


def subcommands() -> dict[str, Any]:
    [action] = [a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction"]
    choices = action.choices
    assert isinstance(choices, dict)
    return choices


def assert_real_cli_command(argv: list[str], subcommand: str) -> None:
    assert argv[0] == subcommand
    assert subcommand in subcommands()
    _parser().parse_args(argv)  # exits (SystemExit) on an unknown flag or a bad value


def assert_qwen_fix_variables(names: set[str], where: str) -> None:
    unknown = names - SETTINGS - set(NON_SETTINGS)
    assert not unknown, f"{where} sets variables qwen-fix does not read: {sorted(unknown)}"


def flag(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, f"{name} given {argv.count(name)} times in {argv}"
    return argv[argv.index(name) + 1]


def stub_server(tmp_path: Path) -> dict[str, str]:
    """`vllm` and `python3` on PATH replaced by a program that records its arguments and env."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = (
        f"#!{sys.executable}\nimport json, os, sys\n"
        "with open(os.environ['ARGV_OUT'], 'w') as out:\n    json.dump(sys.argv[1:], out)\n"
        "with open(os.environ['ENV_OUT'], 'w') as out:\n    json.dump(dict(os.environ), out)\n"
    )
    for name in ("vllm", "python3"):
        program = bin_dir / name
        program.write_text(record)
        program.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ARGV_OUT": str(tmp_path / "argv.json"),
        "ENV_OUT": str(tmp_path / "env.json"),
    }


def launched(tmp_path: Path, command: list[str], **env: str) -> list[str]:
    """The server argv that `command` ends up executing, with the stubs in place."""
    full_env = {**stub_server(tmp_path), **env}
    subprocess.run(command, env=full_env, check=True, timeout=30, capture_output=True)
    argv: list[str] = json.loads((tmp_path / "argv.json").read_text())
    return argv


def launch_env(tmp_path: Path) -> dict[str, str]:
    """The environment the last `launched` server started with."""
    env: dict[str, str] = json.loads((tmp_path / "env.json").read_text())
    return env


def lws_command(template: str) -> list[str]:
    """The LWS container's command as its shell receives it."""
    lws = k8s_object("LeaderWorkerSet", "vllm-qwen3-coder")["spec"]["leaderWorkerTemplate"]
    [container] = lws[template]["spec"]["containers"]
    # Kubernetes turns `$$` into `$` before the container starts; the shell does the rest.
    return [part.replace("$$", "$") for part in container["command"]]


def default_launch(tmp_path: Path, launch: str) -> list[str]:
    """The server argv of one of LAUNCHES started with its defaults (the leader, for two nodes)."""
    if launch == "kubernetes/vllm-lws.yaml":
        lws_env = {"LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "0", "LWS_LEADER_ADDRESS": "lead"}
        return launched(tmp_path, lws_command("leaderTemplate"), **lws_env)
    if launch == "vllm/bf16-two-nodes.sh":
        return launched(
            tmp_path, ["bash", str(DEPLOY / launch), "leader"], LEADER_ADDRESS="10.0.0.1"
        )
    return launched(tmp_path, ["bash", str(DEPLOY / launch)])


def is_vllm(argv: list[str]) -> bool:
    return argv[0] == "serve"


def served_model(argv: list[str]) -> str:
    return argv[1] if is_vllm(argv) else flag(argv, "--model-path")


def served_window(argv: list[str]) -> int:
    return int(flag(argv, "--max-model-len" if is_vllm(argv) else "--context-length"))


def server_flags(profile: ModelProfile, argv: list[str]) -> str:
    """The flags the profile says this server needs."""
    return profile.vllm_flags if is_vllm(argv) else profile.sglang_flags


def assert_has_flags(argv: list[str], flags: str) -> None:
    """Every `--flag` of `flags` is in `argv`, with the same value when it takes one."""
    words = shlex.split(flags)
    for name, following in zip(words, [*words[1:], None], strict=True):
        if not name.startswith("--"):
            continue
        if following is None or following.startswith("--"):
            assert name in argv, f"{name} missing from {argv}"
        else:
            assert flag(argv, name) == following


def assert_vllm_qwen3_coder(argv: list[str]) -> None:
    assert argv[0] == "serve"
    assert "--enable-auto-tool-choice" in argv
    assert flag(argv, "--tool-call-parser") == "qwen3_coder"
    assert "--enable-prompt-tokens-details" in argv


def assert_sglang_qwen3_coder(argv: list[str]) -> None:
    assert argv[:2] == ["-m", "sglang.launch_server"]
    assert flag(argv, "--tool-call-parser") == "qwen3_coder"
    assert "--enable-cache-report" in argv
    assert "--enable-metrics" in argv


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        for document in yaml_documents(path):
            yield path, document


def k8s_objects() -> Iterator[dict[str, Any]]:
    """The objects themselves: no kustomizations, no patches of the docker-host component."""
    for path, document in k8s_documents():
        if "docker-host" not in path.parts and path.name != "kustomization.yaml":
            yield document


def pod_templates() -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner name, pod template) of every workload, LWS leader and worker templates included."""
    for doc in k8s_objects():
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield doc["metadata"]["name"], spec["template"]
        if doc["kind"] == "LeaderWorkerSet":
            lws = spec["leaderWorkerTemplate"]
            for key in ("leaderTemplate", "workerTemplate"):
                template = lws[key]
                # The LWS controller adds this label to every pod of the set.
                labels = template["metadata"]["labels"]
                labels["leaderworkerset.sigs.k8s.io/name"] = doc["metadata"]["name"]
                yield doc["metadata"]["name"], template


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    found: list[dict[str, Any]] = [*spec.get("initContainers", []), *spec["containers"]]
    return found


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in k8s_objects() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


# --- every file ----------------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    files = {str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*.y*ml")}
    assert files >= EXPECTED_YAML
    for name in files:
        assert yaml_documents(DEPLOY / name), f"{name} holds no document"


# --- compose -------------------------------------------------------------------------------------


def test_compose_services_run_real_cli_subcommands() -> None:
    services = compose(filled_env())["services"]
    assert {"redis", "web", "worker", "vllm"} <= set(services)
    assert_real_cli_command(services["web"]["command"], "web")
    assert_real_cli_command(services["worker"]["command"], "worker")
    assert services["vllm"]["profiles"] == ["gpu"]
    assert "--appendonly" in services["redis"]["command"]
    assert flag(services["redis"]["command"], "--appendonly") == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert services["web"]["ports"] == ["3000:3000"]
    assert services["web"]["environment"]["WEB_PORT"] == "3000"


def test_compose_sets_only_real_settings_for_qwen_fix() -> None:
    services = compose(filled_env())["services"]
    for name in QWEN_FIX_SERVICES:
        assert_qwen_fix_variables(set(services[name].get("environment", {})), f"compose {name}")
    assert services["web"]["env_file"] == services["worker"]["env_file"] == ".env"
    example = set(read_env_file(DEPLOY / "env.example"))
    assert_qwen_fix_variables(example, "env.example")
    assert {"APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET", "MODEL_BASE_URL", "MODEL_NAME"} <= example


def test_compose_worker_sees_docker_and_data_dir_at_the_host_path() -> None:
    worker = compose(filled_env())["services"]["worker"]
    data_dir = worker["environment"]["DATA_DIR"]
    assert data_dir == filled_env()["DATA_DIR"]
    assert f"{data_dir}:{data_dir}" in worker["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]
    assert worker["environment"]["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert worker["environment"]["TMPDIR"].startswith(data_dir + "/")
    assert worker["group_add"] == ["998"]
    assert worker["depends_on"]["data-dir"]["condition"] == "service_completed_successfully"


def test_compose_refuses_to_start_without_the_docker_group() -> None:
    env = {**filled_env(), "DOCKER_GID": ""}
    with pytest.raises(LookupError, match="DOCKER_GID"):
        compose(env)


def test_compose_data_dir_service_prepares_the_same_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    service = compose({**filled_env(), "DATA_DIR": str(data_dir)})["services"]["data-dir"]
    assert service["volumes"] == [f"{data_dir}:{data_dir}"]
    command = [arg.replace("chown 1000:1000", "true") for arg in service["entrypoint"]]
    subprocess.run(command, env={**os.environ, **service["environment"]}, check=True)
    assert (data_dir / "tmp").is_dir()


def test_compose_build_contexts_exist() -> None:
    services = compose(filled_env())["services"]
    for name in ("web", "worker", "sandbox-image"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name
    assert services["sandbox-image"]["image"] == filled_env()["SANDBOX_IMAGE"]


def test_compose_vllm_runs_a_launch_script_with_the_qwen3_coder_parser(tmp_path: Path) -> None:
    vllm = compose(filled_env())["services"]["vllm"]
    assert "./vllm:/deploy/vllm:ro" in vllm["volumes"]
    shell, script = vllm["entrypoint"]
    local = DEPLOY / "vllm" / Path(script).relative_to("/deploy/vllm")
    assert local.is_file()
    assert_vllm_qwen3_coder(launched(tmp_path, [shell, str(local)]))
    assert "env_file" not in vllm, "the model server must not receive the GitHub credentials"


@pytest.mark.parametrize("script", VLLM_SCRIPTS)
def test_compose_vllm_launch_picks_any_single_node_script(tmp_path: Path, script: str) -> None:
    vllm = compose({**filled_env(), "VLLM_LAUNCH": script})["services"]["vllm"]
    shell, path = vllm["entrypoint"]
    argv = launched(
        tmp_path, [shell, str(DEPLOY / "vllm" / Path(path).relative_to("/deploy/vllm"))]
    )
    assert_vllm_qwen3_coder(argv)


# --- launch scripts ------------------------------------------------------------------------------


@pytest.mark.parametrize("script", VLLM_SCRIPTS)
def test_vllm_single_node_launches(tmp_path: Path, script: str) -> None:
    argv = launched(tmp_path, ["bash", str(DEPLOY / "vllm" / script)], MODEL="m", PORT="8123")
    assert_vllm_qwen3_coder(argv)
    assert argv[1] == "m"
    assert flag(argv, "--port") == "8123"


def test_vllm_fp8_one_node_uses_expert_parallel_not_tensor_parallel(tmp_path: Path) -> None:
    argv = launched(tmp_path, ["bash", str(DEPLOY / "vllm" / "fp8-one-node.sh")])
    assert argv[1] == Settings.model_fields["model_name"].default
    assert "--enable-expert-parallel" in argv
    assert flag(argv, "--data-parallel-size") == "8"
    assert flag(argv, "--max-model-len") == "131072"
    assert "--tensor-parallel-size" not in argv


def test_vllm_bf16_two_nodes_leader_and_headless_follower(tmp_path: Path) -> None:
    script = str(DEPLOY / "vllm" / "bf16-two-nodes.sh")
    leader = launched(tmp_path, ["bash", script, "leader"], LEADER_ADDRESS="10.1.2.3")
    follower = launched(tmp_path, ["bash", script, "follower"], LEADER_ADDRESS="10.1.2.3")
    for argv in (leader, follower):
        assert_vllm_qwen3_coder(argv)
        assert argv[1] == "Qwen/Qwen3-Coder-480B-A35B-Instruct"
        assert "--enable-expert-parallel" in argv
        assert flag(argv, "--data-parallel-size") == "16"
        assert flag(argv, "--data-parallel-size-local") == "8"
        assert flag(argv, "--data-parallel-address") == "10.1.2.3"
        assert flag(argv, "--data-parallel-rpc-port") == "13345"
    assert flag(leader, "--data-parallel-start-rank") == "0"
    assert flag(follower, "--data-parallel-start-rank") == "8"
    assert "--headless" in follower and "--headless" not in leader
    assert flag(leader, "--port") == "8000" and "--port" not in follower


def test_vllm_bf16_two_nodes_needs_the_leader_address(tmp_path: Path) -> None:
    env = {**stub_server(tmp_path), "LEADER_ADDRESS": ""}
    script = str(DEPLOY / "vllm" / "bf16-two-nodes.sh")
    done = subprocess.run(["bash", script, "follower"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "LEADER_ADDRESS" in done.stderr


@pytest.mark.parametrize("script", SGLANG_SCRIPTS)
def test_sglang_launches(tmp_path: Path, script: str) -> None:
    argv = launched(tmp_path, ["bash", str(DEPLOY / "sglang" / script)], PORT="30123")
    assert_sglang_qwen3_coder(argv)
    assert flag(argv, "--port") == "30123"


def test_sglang_expert_parallel_layouts(tmp_path: Path) -> None:
    tp8_ep2 = launched(tmp_path, ["bash", str(DEPLOY / "sglang" / "fp8-tp8-ep2.sh")])
    assert (flag(tp8_ep2, "--tp"), flag(tp8_ep2, "--ep")) == ("8", "2")
    deepep = launched(tmp_path, ["bash", str(DEPLOY / "sglang" / "fp8-deepep.sh")])
    assert flag(deepep, "--moe-a2a-backend") == "deepep"
    assert flag(deepep, "--ep") == flag(deepep, "--tp") == "8"


@pytest.mark.parametrize("server", SERVERS)
def test_coder_next_on_one_gpu(tmp_path: Path, server: str) -> None:
    script = str(DEPLOY / server / "coder-next-one-gpu.sh")
    argv = launched(tmp_path, ["bash", script])
    assert served_model(argv) == "Qwen/Qwen3-Coder-Next-FP8"
    assert profile_for(served_model(argv)).name == "qwen3-coder-next"
    assert served_window(argv) == 131_072
    assert "--reasoning-parser" not in argv
    tensor_parallel = "--tensor-parallel-size" if server == "vllm" else "--tp"
    assert flag(argv, tensor_parallel) == "1"
    assert flag(launched(tmp_path, ["bash", script], GPUS="2"), tensor_parallel) == "2"
    # vLLM keeps prefix caching opt-in for hybrid models; SGLang's radix cache is on by default.
    assert ("--enable-prefix-caching" in argv) == (server == "vllm")


@pytest.mark.parametrize("server", SERVERS)
def test_qwen36_reasoning_preserves_thinking(tmp_path: Path, server: str) -> None:
    script = str(DEPLOY / server / "qwen3.6-reasoning.sh")
    argv = launched(tmp_path, ["bash", script])
    assert served_model(argv) == "Qwen/Qwen3.6-35B-A3B-FP8"
    assert profile_for(served_model(argv)).name == "qwen3.6"
    assert served_window(argv) == 262_144
    assert flag(argv, "--reasoning-parser") == "qwen3"
    assert json.loads(flag(argv, "--default-chat-template-kwargs")) == {"preserve_thinking": True}
    assert ("--language-model-only" in argv) == ("--enable-prefix-caching" in argv) == is_vllm(argv)
    # For servers that predate the flag: qwen-fix sends the kwarg with every request anyway.
    without = launched(tmp_path, ["bash", script], CHAT_TEMPLATE_KWARGS="")
    assert "--default-chat-template-kwargs" not in without
    assert flag(without, "--reasoning-parser") == "qwen3"


@pytest.mark.parametrize("server", SERVERS)
def test_qwen36_yarn_is_opt_in(tmp_path: Path, server: str) -> None:
    override, allow_long, window = YARN_SWITCHES[server]
    script = str(DEPLOY / server / "qwen3.6-reasoning.sh")
    assert override not in launched(tmp_path, ["bash", script])
    assert allow_long not in launch_env(tmp_path)

    argv = launched(tmp_path, ["bash", script], YARN="1")
    rope = json.loads(flag(argv, override))["text_config"]["rope_parameters"]
    assert (rope["rope_type"], rope["factor"], rope["original_max_position_embeddings"]) == (
        "yarn",
        4.0,
        262_144,
    )
    # The override replaces the model's whole rope block, so it must repeat the model's own keys.
    assert {"rope_theta", "partial_rotary_factor", "mrope_section", "mrope_interleaved"} <= set(
        rope
    )
    assert served_window(argv) == 1_010_000 <= rope["factor"] * 262_144
    assert launch_env(tmp_path)[allow_long] == "1"
    shorter = launched(tmp_path, ["bash", script], YARN="1", **{window: "524288"})
    assert served_window(shorter) == 524_288

    env = {**stub_server(tmp_path), "YARN": "yes"}
    refused = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "YARN" in refused.stderr


def test_qwen36_yarn_override_is_the_same_for_both_servers(tmp_path: Path) -> None:
    vllm = launched(tmp_path, ["bash", str(DEPLOY / "vllm" / "qwen3.6-reasoning.sh")], YARN="1")
    sglang = launched(tmp_path, ["bash", str(DEPLOY / "sglang" / "qwen3.6-reasoning.sh")], YARN="1")
    assert json.loads(flag(vllm, "--hf-overrides")) == json.loads(
        flag(sglang, "--json-model-override-args")
    )


@pytest.mark.parametrize("launch", LAUNCHES)
def test_launch_has_the_server_flags_of_the_profile_qwen_fix_picks(
    tmp_path: Path, launch: str
) -> None:
    """Scripts and workers/agent/profiles.py cannot drift apart."""
    argv = default_launch(tmp_path, launch)
    profile = profile_for(served_model(argv))
    assert profile.name != "generic", f"{launch} serves a model qwen-fix has no profile for"
    assert_has_flags(argv, server_flags(profile, argv))
    assert ("--reasoning-parser" in argv) == profile.reasoning
    if profile.template_kwargs:
        kwargs = json.loads(flag(argv, "--default-chat-template-kwargs"))
        assert kwargs == dict(profile.template_kwargs)


def readme_layouts() -> dict[str, dict[str, str]]:
    """deploy/README.md's table of GPU layouts: the launch (first path in the row) -> its cells."""
    section = (DEPLOY / "README.md").read_text().split("## GPU layouts\n", 1)[1]
    lines = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    table = {}
    for cells in rows:
        match = re.match(r"`([^`]+)`", cells[0])
        assert match, cells
        table[match.group(1)] = dict(zip(header, cells, strict=True))
    return table


def test_readme_layout_table_lists_every_launch() -> None:
    assert set(readme_layouts()) == set(LAUNCHES)


@pytest.mark.parametrize("launch", LAUNCHES)
def test_readme_layout_row_says_what_the_launch_serves(tmp_path: Path, launch: str) -> None:
    row = readme_layouts()[launch]
    argv = default_launch(tmp_path, launch)
    model = served_model(argv)
    assert row["MODEL_NAME"] == f"`{model}`"
    assert row["profile"] == f"`{profile_for(model).name}`"
    window = re.match(r"[\d,]+", row["window"])
    assert window and int(window.group().replace(",", "")) == served_window(argv)


def test_every_launch_script_is_tested() -> None:
    assert {p.name for p in (DEPLOY / "vllm").glob("*.sh")} == {*VLLM_SCRIPTS, "bf16-two-nodes.sh"}
    assert {p.name for p in (DEPLOY / "sglang").glob("*.sh")} == set(SGLANG_SCRIPTS)


# --- Kubernetes ----------------------------------------------------------------------------------


def test_k8s_manifests_name_their_kind_and_namespace() -> None:
    kinds = []
    for path, doc in k8s_documents():
        assert doc.get("apiVersion") and doc.get("kind"), path
        kinds.append(doc["kind"])
        if doc["kind"] in ("Kustomization", "Component"):
            continue
        assert doc["metadata"]["name"], path
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, path
    expected = {"Namespace", "Secret", "ConfigMap", "StatefulSet", "Service", "Deployment"}
    assert expected | {"LeaderWorkerSet"} <= set(kinds)
    assert k8s_object("Namespace", NAMESPACE)


def test_kustomizations_list_existing_files() -> None:
    for path in K8S.rglob("kustomization.yaml"):
        [doc] = yaml_documents(path)
        listed = [*doc.get("resources", []), *doc.get("components", [])]
        listed += [patch["path"] for patch in doc.get("patches", [])]
        for entry in listed:
            assert (path.parent / entry).exists(), f"{path}: {entry}"
    [base] = yaml_documents(K8S / "kustomization.yaml")
    assert base["namespace"] == NAMESPACE
    # Applied separately: a real secret must never be overwritten, and LWS needs its CRD.
    assert "secret-template.yaml" not in base["resources"]
    assert "vllm-lws.yaml" not in base["resources"]


def test_k8s_config_and_secret_hold_only_settings() -> None:
    config = k8s_object("ConfigMap", "qwen-fix-config")["data"]
    secret = k8s_object("Secret", "qwen-fix-app")["stringData"]
    assert set(config) <= SETTINGS, set(config) - SETTINGS
    assert set(secret) <= SETTINGS, set(secret) - SETTINGS
    assert {"APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET"} <= set(secret)
    assert config["MODEL_BASE_URL"].startswith("http://vllm-qwen3-coder:8000/")


def test_k8s_qwen_fix_containers_run_real_commands_with_real_settings() -> None:
    seen = set()
    for owner, template in pod_templates():
        for container in containers(template):
            if container["image"] != "qwen-fix":
                continue
            names = {item["name"] for item in container.get("env", [])}
            assert_qwen_fix_variables(names, f"{owner}/{container['name']}")
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert k8s_object("ConfigMap", source["configMapRef"]["name"])
                if "secretRef" in source:
                    assert k8s_object("Secret", source["secretRef"]["name"])
            if "args" in container:
                assert_real_cli_command(container["args"], container["args"][0])
                seen.add(container["args"][0])
    assert seen == {"web", "worker"}


def test_k8s_services_select_existing_pods() -> None:
    templates = [template for _, template in pod_templates()]
    services = [d for d in k8s_objects() if d["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} == {
        "redis",
        "qwen-fix-web",
        "vllm-qwen3-coder",
    }
    for service in services:
        selector = service["spec"]["selector"].items()
        matches = [t for t in templates if selector <= t["metadata"]["labels"].items()]
        assert matches, service["metadata"]["name"]
        port_names = {
            port.get("name") for t in matches for c in containers(t) for port in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]


def test_k8s_worker_engine_sees_data_dir_and_socket_at_the_same_paths() -> None:
    template = k8s_object("Deployment", "qwen-fix-worker")["spec"]["template"]
    by_name = {c["name"]: c for c in containers(template)}
    worker, dind = by_name["worker"], by_name["dind"]
    env = {item["name"]: item["value"] for item in worker["env"]}
    mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
    engine_mounts = {m["name"]: m["mountPath"] for m in dind["volumeMounts"]}
    assert env["DATA_DIR"] == mounts["data"] == engine_mounts["data"]
    assert env["TMPDIR"].startswith(env["DATA_DIR"] + "/")
    socket = env["DOCKER_HOST"].removeprefix("unix://")
    assert f"--host=unix://{socket}" in dind["args"]
    assert os.path.dirname(socket) == mounts["docker-socket"] == engine_mounts["docker-socket"]
    assert dind["restartPolicy"] == "Always" and dind["securityContext"]["privileged"]
    assert template["spec"]["securityContext"]["runAsUser"] == 1000


def test_k8s_docker_host_component_swaps_the_engine_for_the_node_socket() -> None:
    [patch] = yaml_documents(K8S / "docker-host" / "worker-docker-host.yaml")
    spec = patch["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["docker-socket"]["hostPath"]["path"] == "/var/run/docker.sock"
    data_path = volumes["data"]["hostPath"]["path"]
    base = k8s_object("Deployment", "qwen-fix-worker")["spec"]["template"]
    [worker] = [c for c in containers(base) if c["name"] == "worker"]
    base_env = {item["name"]: item["value"] for item in worker["env"]}
    assert data_path == base_env["DATA_DIR"], "node path and container path must be the same"
    [patched] = spec["containers"]
    assert patched["env"] == [{"name": "DOCKER_HOST", "value": "unix:///var/run/docker.sock"}]
    deleted = {c["name"] for c in spec["initContainers"] if c.get("$patch") == "delete"}
    assert deleted == {"dind", "pull-sandbox-image"}


@pytest.mark.parametrize(("template", "index"), [("leaderTemplate", "0"), ("workerTemplate", "1")])
def test_lws_launches_bf16_data_parallel_over_the_group(
    tmp_path: Path, template: str, index: str
) -> None:
    lws = k8s_object("LeaderWorkerSet", "vllm-qwen3-coder")["spec"]["leaderWorkerTemplate"]
    assert lws["size"] == 2
    [container] = lws[template]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    lws_env = {"LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": index, "LWS_LEADER_ADDRESS": "lead"}
    argv = launched(tmp_path, lws_command(template), **lws_env)
    assert_vllm_qwen3_coder(argv)
    assert argv[1] == "Qwen/Qwen3-Coder-480B-A35B-Instruct"
    assert "--enable-expert-parallel" in argv
    assert flag(argv, "--data-parallel-size") == "16"
    assert flag(argv, "--data-parallel-size-local") == "8"
    assert flag(argv, "--data-parallel-start-rank") == str(int(index) * 8)
    assert flag(argv, "--data-parallel-address") == "lead"
    assert ("--headless" in argv) == (template == "workerTemplate")


# --- Dockerfiles and docs ------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", path.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def copy_sources(path: Path) -> list[str]:
    sources = []
    for instruction, arguments in dockerfile_instructions(path):
        if instruction not in ("COPY", "ADD"):
            continue
        parts = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
        if any(part.startswith("--from") for part in parts):
            continue
        sources += [part for part in parts[:-1] if not part.startswith("--")]
    return sources


@pytest.mark.parametrize(
    ("dockerfile", "context"),
    [(DEPLOY / "Dockerfile", ROOT), (DEPLOY / "sandbox" / "Dockerfile", DEPLOY / "sandbox")],
)
def test_dockerfile_copy_sources_exist(dockerfile: Path, context: Path) -> None:
    for source in copy_sources(dockerfile):
        assert (context / source).exists(), f"{dockerfile}: COPY {source}"


def test_app_image_installs_the_lock_and_runs_the_cli() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    sources = copy_sources(dockerfile)
    assert {"requirements/app.txt", "pyproject.toml", "bot", "workers", "sandbox"} <= set(sources)
    # Every package the build finds must be copied in.
    packages = re.findall(r'"(\w+)\*"', (ROOT / "pyproject.toml").read_text().split("include")[1])
    assert set(packages) <= set(sources)
    allowed = {
        line[1:]
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert set(sources) <= allowed, "the build context ignores a file COPY needs"
    instructions = dockerfile_instructions(dockerfile)
    runs = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "pip install -r requirements/app.txt" in runs
    assert "pip install --no-deps ." in runs
    assert ("ENTRYPOINT", '["qwen-fix"]') in instructions
    assert re.search(
        r'^qwen-fix = "workers\.cli:main"$', (ROOT / "pyproject.toml").read_text(), re.M
    )
    [user] = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert user == "1000:1000"


def test_readme_documents_non_settings_variables_and_metrics() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for name in NON_SETTINGS:
        assert f"`{name}`" in readme, name
    for metric in (
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:num_preemptions_total",
        "sglang:num_queue_reqs",
        "sglang:token_usage",
        "MODEL_BASE_URL",
        "MODEL_NAME",
    ):
        assert metric in readme, metric


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()


def test_the_image_lock_is_the_apps_part_of_the_ci_lock() -> None:
    """The image runs the versions CI tested, and none of the dev tools."""
    app = read_pins(ROOT / "requirements" / "app.txt")
    full = read_pins(ROOT / "requirements" / "lock.txt")
    assert {name: full.get(name) for name in app} == app
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {requirement_name(r) for r in project["dependencies"]} <= set(app)
    dev_tools = {requirement_name(r) for r in project["optional-dependencies"]["dev"]}
    assert dev_tools <= set(full) and not dev_tools & set(app)
