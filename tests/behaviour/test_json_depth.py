"""The JSON depth limit counts structure the same way on its fast path (chunks without
backslashes, counted with numpy) as on the byte-by-byte path, across any chunking."""

import random

import pytest

from service.api.limits import JsonDepth, JsonTooDeep

ALPHABET = b'[]{}""\\\\ a,:'


def outcome(chunks: list[bytes], limit: int, fast: bool) -> tuple[object, ...]:
    depth = JsonDepth(limit)
    try:
        for chunk in chunks:
            depth.feed(chunk) if fast else depth._feed_escaped(chunk)
    except JsonTooDeep:
        return ("too deep",)
    return depth.depth, depth.in_string, depth.escaped


@pytest.mark.parametrize("seed", range(300))
def test_fast_path_agrees_with_the_byte_loop(seed: int) -> None:
    rng = random.Random(seed)
    document = bytes(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 200)))
    cuts = sorted(rng.sample(range(len(document) + 1), k=min(len(document) + 1, 4)))
    chunks = [document[a:b] for a, b in zip([0, *cuts], [*cuts, len(document)], strict=True)]
    limit = rng.randrange(1, 6)

    assert outcome(chunks, limit, fast=True) == outcome(chunks, limit, fast=False)


def test_brackets_inside_strings_do_not_count() -> None:
    depth = JsonDepth(2)

    depth.feed(b'{"a": "[[[[{{{{", "b": [')
    depth.feed(b'"]]]]"]}')

    assert (depth.depth, depth.in_string) == (0, False)


def test_deep_document_raises_on_the_fast_path() -> None:
    with pytest.raises(JsonTooDeep):
        JsonDepth(3).feed(b'{"a": [[1]], "b": [[[[2]]]]}')
