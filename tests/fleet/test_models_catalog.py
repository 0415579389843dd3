"""The GGUF catalog reads real GGUF files written with the `gguf` package and split with llama-gguf-split."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from console.demo_model import N_CTX_TRAIN, N_EMBD, N_FF, N_HEAD, N_LAYER, write_tiny_model
from gateway_core.fleet.models import CatalogProblem, GgufError, GgufModel, read_model, scan
from tests.testbed import component_unavailable
from tests.testbed.llama_build import build_dir

TINY_VOCABULARY = 3 + 256
TINY_PARAMETERS = (
    2 * TINY_VOCABULARY * N_EMBD  # token_embd, output
    + N_EMBD  # output_norm
    + N_LAYER * (2 * N_EMBD + 4 * N_EMBD * N_EMBD + 3 * N_FF * N_EMBD)
)


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    file_type: int | None = gguf.LlamaFileType.MOSTLY_Q8_0,
    layers: int = 2,
    embedding_length: int = 64,
    head_count: int = 4,
    head_count_kv: int | None = None,
    key_length: int | None = None,
    value_length: int | None = None,
    context_length: int = 4096,
    split_max_tensors: int = 0,
) -> Path:
    """A small model-shaped GGUF with float32 tensors; only the metadata differs between variants."""
    writer = gguf.GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    writer.add_context_length(context_length)
    writer.add_embedding_length(embedding_length)
    writer.add_block_count(layers)
    writer.add_head_count(head_count)
    if head_count_kv is not None:
        writer.add_head_count_kv(head_count_kv)
    if key_length is not None:
        writer.add_key_length(key_length)
    if value_length is not None:
        writer.add_value_length(value_length)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tensor("token_embd.weight", np.zeros((16, embedding_length), dtype=np.float32))
    for block in range(layers):
        writer.add_tensor(f"blk.{block}.attn_norm.weight", np.ones(embedding_length, dtype=np.float32))
        writer.add_tensor(f"blk.{block}.ffn_up.weight", np.zeros((8, embedding_length), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def small_parameters(layers: int = 2, embedding_length: int = 64) -> int:
    return 16 * embedding_length + layers * (embedding_length + 8 * embedding_length)


def only_model(directory: Path) -> GgufModel:
    catalog = scan([directory])
    assert catalog.problems == ()
    assert len(catalog.models) == 1
    return catalog.models[0]


def problems_by_name(catalog_problems: tuple[CatalogProblem, ...]) -> dict[str, str]:
    return {problem.path.name: problem.message for problem in catalog_problems}


# --- one file ---------------------------------------------------------------------------------------------------


def test_tiny_llama_model_is_catalogued_with_its_shape_parameters_and_size(tmp_path):
    path = tmp_path / "tiny-llama.gguf"
    write_tiny_model(path)

    model = only_model(tmp_path)

    assert model == GgufModel(
        path=path,
        name="tiny-llama",
        architecture="llama",
        parameter_count=TINY_PARAMETERS,
        quantization="ALL_F32",
        context_length=N_CTX_TRAIN,
        layers=N_LAYER,
        embedding_length=N_EMBD,
        head_count=N_HEAD,
        head_count_kv=N_HEAD,
        key_length=N_EMBD // N_HEAD,
        value_length=N_EMBD // N_HEAD,
        file_size=path.stat().st_size,
        parts=(path,),
    )


def test_read_model_reads_one_file_like_the_scan_does(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_model(path)

    assert read_model(path) == only_model(tmp_path)


@pytest.mark.parametrize(
    ("file_type", "quantization"),
    [
        (gguf.LlamaFileType.ALL_F32, "ALL_F32"),
        (gguf.LlamaFileType.MOSTLY_F16, "F16"),
        (gguf.LlamaFileType.MOSTLY_Q8_0, "Q8_0"),
        (gguf.LlamaFileType.MOSTLY_Q4_K_M, "Q4_K_M"),
        (gguf.LlamaFileType.MOSTLY_IQ4_XS, "IQ4_XS"),
        (gguf.LlamaFileType.GUESSED | gguf.LlamaFileType.MOSTLY_Q5_K_S, "Q5_K_S (guessed)"),
        (123, "unknown (123)"),
        (None, "unknown (no general.file_type)"),
    ],
)
def test_file_type_is_named_as_llama_cpp_names_it_and_unknown_values_are_not_errors(tmp_path, file_type, quantization):
    write_gguf(tmp_path / "variant.gguf", file_type=file_type)

    assert only_model(tmp_path).quantization == quantization


def test_grouped_query_attention_shape_is_read_from_the_architecture_keys(tmp_path):
    write_gguf(
        tmp_path / "qwen.gguf",
        arch="qwen2",
        embedding_length=256,
        head_count=16,
        head_count_kv=2,
        key_length=64,
        value_length=32,
        context_length=32768,
        layers=3,
    )

    model = only_model(tmp_path)

    assert (model.architecture, model.context_length, model.layers, model.embedding_length) == ("qwen2", 32768, 3, 256)
    assert (model.head_count, model.head_count_kv, model.key_length, model.value_length) == (16, 2, 64, 32)
    assert model.parameter_count == small_parameters(layers=3, embedding_length=256)


def test_missing_kv_heads_and_key_value_lengths_default_to_heads_and_embedding_over_heads(tmp_path):
    write_gguf(tmp_path / "plain.gguf", embedding_length=128, head_count=8)

    model = only_model(tmp_path)

    assert (model.head_count_kv, model.key_length, model.value_length) == (8, 16, 16)


def test_scan_looks_in_subdirectories_ignores_other_files_and_sorts_by_path(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    write_gguf(tmp_path / "b" / "deep" / "zeta.gguf")
    write_gguf(tmp_path / "a" / "alpha.GGUF")
    (tmp_path / "a" / "README.md").write_text("not a model\n")
    (tmp_path / "a" / "weights.bin").write_bytes(b"\0" * 64)

    catalog = scan([tmp_path])

    assert [model.path.relative_to(tmp_path) for model in catalog.models] == [
        Path("a/alpha.GGUF"),
        Path("b/deep/zeta.gguf"),
    ]
    assert catalog.problems == ()


def test_a_file_reached_through_two_directories_is_listed_once(tmp_path):
    (tmp_path / "models").mkdir()
    write_gguf(tmp_path / "models" / "one.gguf")
    (tmp_path / "models" / "loop").symlink_to(tmp_path / "models")

    catalog = scan([tmp_path, tmp_path / "models"])

    assert [model.name for model in catalog.models] == ["one"]


def test_catalog_to_dict_is_plain_json(tmp_path):
    write_tiny_model(tmp_path / "tiny.gguf")
    (tmp_path / "notes.gguf").write_text("hello\n")

    as_dict = scan([tmp_path]).to_dict()

    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["models"][0]["parts"] == [str(tmp_path / "tiny.gguf")]
    assert as_dict["models"][0]["quantization"] == "ALL_F32"
    assert as_dict["problems"] == [{"path": str(tmp_path / "notes.gguf"), "message": "not a GGUF file (bad magic)"}]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_scan_leaves_no_model_file_mapped_in_memory(tmp_path):
    write_tiny_model(tmp_path / "tiny.gguf")
    write_gguf(tmp_path / "split.gguf", split_max_tensors=2)
    write_tiny_model(tmp_path / "half.gguf")
    with (tmp_path / "half.gguf").open("r+b") as handle:
        handle.truncate((tmp_path / "half.gguf").stat().st_size // 2)

    catalog = scan([tmp_path])

    assert len(catalog.models) == 2
    assert len(catalog.problems) == 1
    maps = Path("/proc/self/maps").read_text()
    assert str(tmp_path) not in maps


# --- split models ---------------------------------------------------------------------------------------------


def test_split_gguf_from_llama_gguf_split_counts_as_one_model_with_all_parts_summed(tmp_path):
    tool = build_dir() / "bin" / "llama-gguf-split"
    if not tool.exists():
        component_unavailable("llama-gguf-split", f"{tool} not built; run `python -m tests.testbed` to build it")
    whole = tmp_path / "whole" / "tiny.gguf"
    whole.parent.mkdir()
    write_tiny_model(whole)
    (tmp_path / "split").mkdir()
    subprocess.run(
        [str(tool), "--split-max-tensors", "8", str(whole), str(tmp_path / "split" / "tiny")],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    parts = tuple(sorted((tmp_path / "split").iterdir()))

    model = only_model(tmp_path / "split")

    assert [part.name for part in parts] == [f"tiny-0000{no}-of-00003.gguf" for no in (1, 2, 3)]
    assert model.path == parts[0]
    assert model.parts == parts
    assert model.name == "tiny"
    assert model.parameter_count == TINY_PARAMETERS == read_model(whole).parameter_count
    assert model.file_size == sum(part.stat().st_size for part in parts)
    assert (model.architecture, model.layers, model.context_length) == ("llama", N_LAYER, N_CTX_TRAIN)


def test_split_gguf_from_gguf_writer_counts_as_one_model_listed_by_its_first_part(tmp_path):
    write_gguf(tmp_path / "small.gguf", layers=3, split_max_tensors=3)
    parts = tuple(sorted(tmp_path.iterdir()))

    model = only_model(tmp_path)

    assert len(parts) == 3
    assert model.path == parts[0] == tmp_path / "small-00001-of-00003.gguf"
    assert model.parts == parts
    assert model.name == "small"
    assert model.parameter_count == small_parameters(layers=3)
    assert model.file_size == sum(part.stat().st_size for part in parts)
    assert read_model(parts[0]) == model


def test_split_model_with_a_missing_part_is_a_problem_for_that_model_and_the_scan_goes_on(tmp_path):
    write_gguf(tmp_path / "broken.gguf", split_max_tensors=2)
    (tmp_path / "broken-00002-of-00003.gguf").unlink()
    write_gguf(tmp_path / "fine.gguf")

    catalog = scan([tmp_path])

    assert [model.name for model in catalog.models] == ["fine"]
    assert problems_by_name(catalog.problems) == {
        "broken-00001-of-00003.gguf": "split model of 3 parts is missing part 2 (broken-00002-of-00003.gguf)"
    }
    with pytest.raises(GgufError, match="missing part 2"):
        read_model(tmp_path / "broken-00001-of-00003.gguf")


def test_split_model_whose_first_part_is_missing_is_reported_under_the_first_part_name(tmp_path):
    write_gguf(tmp_path / "headless.gguf", split_max_tensors=2)
    (tmp_path / "headless-00001-of-00003.gguf").unlink()

    catalog = scan([tmp_path])

    assert catalog.models == ()
    assert problems_by_name(catalog.problems) == {
        "headless-00001-of-00003.gguf": "split model of 3 parts is missing part 1 (headless-00001-of-00003.gguf)"
    }


def test_split_parts_from_different_models_are_a_problem(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_gguf(tmp_path / "a" / "mixed.gguf", layers=3, split_max_tensors=3)  # 7 tensors: 3 + 3 + 1
    write_gguf(tmp_path / "b" / "mixed.gguf", layers=4, split_max_tensors=4)  # 9 tensors: 4 + 4 + 1
    shutil.copy(tmp_path / "b" / "mixed-00002-of-00003.gguf", tmp_path / "a" / "mixed-00002-of-00003.gguf")

    catalog = scan([tmp_path / "a"])

    assert catalog.models == ()
    assert problems_by_name(catalog.problems) == {
        "mixed-00001-of-00003.gguf": "parts hold 8 tensors but the header says split.tensors.count = 7"
    }


def test_read_model_of_a_later_split_part_points_at_the_first_part(tmp_path):
    write_gguf(tmp_path / "small.gguf", split_max_tensors=2)

    with pytest.raises(GgufError, match=r"use its first part small-00001-of-00003\.gguf"):
        read_model(tmp_path / "small-00002-of-00003.gguf")


# --- bad input ------------------------------------------------------------------------------------------------


def test_bad_files_and_missing_directories_are_problems_and_the_scan_carries_on(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_model(models / "good.gguf")
    (models / "notes.gguf").write_text("this is a text file, not a model\n")
    (models / "empty.gguf").write_bytes(b"")
    write_tiny_model(models / "half.gguf")
    whole = (models / "half.gguf").read_bytes()
    (models / "half.gguf").write_bytes(whole[: len(whole) // 2])
    missing = tmp_path / "nowhere"

    catalog = scan([models, missing])

    assert [model.name for model in catalog.models] == ["good"]
    messages = problems_by_name(catalog.problems)
    assert messages.pop("notes.gguf") == "not a GGUF file (bad magic)"
    assert messages.pop("empty.gguf") == "not a GGUF file (empty file)"
    assert messages.pop("nowhere") == "model directory does not exist"
    assert messages.pop("half.gguf").startswith("truncated or corrupt GGUF: ")
    assert messages == {}


def test_a_gguf_cut_inside_its_header_is_truncated_or_corrupt(tmp_path):
    write_tiny_model(tmp_path / "cut.gguf")
    whole = (tmp_path / "cut.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[:100])

    with pytest.raises(GgufError, match=r"^truncated or corrupt GGUF: .*\(the file is 100 bytes\)$"):
        read_model(tmp_path / "cut.gguf")


def test_read_model_raises_gguf_error_with_the_reason(tmp_path):
    (tmp_path / "fake.gguf").write_text("GGML? no.\n")

    with pytest.raises(GgufError) as raised:
        read_model(tmp_path / "fake.gguf")

    assert raised.value.message == "not a GGUF file (bad magic)"


def test_a_gguf_without_an_architecture_is_a_problem(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "anonymous.gguf"), arch="llama")
    writer.kv_data[0].pop(gguf.Keys.General.ARCHITECTURE)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    catalog = scan([tmp_path])

    assert problems_by_name(catalog.problems) == {"anonymous.gguf": "GGUF header has no general.architecture"}
