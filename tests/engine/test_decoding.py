"""Bounded content decoding (engine/decoding.py): stacked codings, limits, bombs."""

from __future__ import annotations

import gzip
import struct
import zlib

import httpx
import pytest

from fakes.attacker import MIB, encoded_bomb
from naftiko.upstream.decoding import MAX_CODINGS, BodyDecoder, BodyTooLarge, TooManyCodings

PLAIN = b'{"data": "' + b"x" * 100_000 + b'"}'


def _decoder(codings: str, limit: int = MIB) -> BodyDecoder:
    decoder = BodyDecoder.of(codings, limit)
    assert decoder is not None
    return decoder


def test_stacked_codings_are_undone_last_applied_first() -> None:
    body = zlib.compress(gzip.compress(PLAIN))  # gzip, then deflate
    assert _decoder("gzip, deflate").decode(body) == PLAIN


def test_feeding_chunk_by_chunk_gives_the_same_body() -> None:
    body = gzip.compress(gzip.compress(PLAIN))
    decoder = _decoder("GZIP,gzip")
    out = b"".join(decoder.feed(body[i : i + 7]) for i in range(0, len(body), 7))
    assert out + decoder.flush() == PLAIN


def test_raw_deflate_is_accepted_as_httpx_does() -> None:
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = raw.compress(PLAIN) + raw.flush()
    assert _decoder("deflate").decode(body) == PLAIN


def test_identity_and_nothing_need_no_decoder() -> None:
    assert BodyDecoder.of(None, MIB) is None
    assert BodyDecoder.of("identity", MIB) is None
    assert _decoder("gzip, identity").decode(gzip.compress(PLAIN)) == PLAIN


def test_an_unknown_coding_leaves_the_body_as_it_is() -> None:
    assert _decoder("br").decode(b"not ours to undo") == b"not ours to undo"


def test_more_codings_than_allowed_are_refused() -> None:
    with pytest.raises(TooManyCodings, match=f"3 content encodings .at most {MAX_CODINGS}"):
        BodyDecoder.of("gzip, gzip, gzip", MIB)
    assert issubclass(TooManyCodings, httpx.DecodingError)


def test_invalid_data_is_a_decoding_error() -> None:
    with pytest.raises(httpx.DecodingError):
        _decoder("gzip").decode(b"this is not gzip")


@pytest.mark.parametrize("codings", ["gzip", "gzip, gzip", "gzip, deflate"])
def test_a_bomb_stops_inflating_at_the_limit(codings: str) -> None:
    """256 MiB from a few hundred bytes: no coding produces more than the limit + 1."""
    limit = 64 * 1024
    decoder = _decoder(codings, limit)
    with pytest.raises(BodyTooLarge, match=f"decoded response larger than {limit}"):
        decoder.decode(encoded_bomb(256 * MIB, codings.replace(" ", "").split(",")))
    assert max(decoder.produced) <= limit + 1, decoder.produced


def test_an_inner_stream_of_empty_blocks_counts_against_the_limit() -> None:
    """The first coding inflates into millions of empty deflate blocks: no final output,
    all work. Its own output is bounded too."""
    empty_block = b"\x00\x00\x00\xff\xff"  # a non-final stored block of length 0
    inner = (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        + empty_block * (2 * MIB)
        + b"\x03\x00"  # the final, empty, fixed block
        + struct.pack("<II", 0, 0)
    )
    assert gzip.decompress(inner) == b""
    decoder = _decoder("gzip, gzip", MIB)
    with pytest.raises(BodyTooLarge):
        decoder.decode(gzip.compress(inner))
    assert decoder.produced[0] <= MIB + 1
