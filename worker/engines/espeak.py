"""The `espeak` engine: real speech on a CPU from libespeak-ng, no weights needed.

PyPI `espeakng-loader` ships the library and its data but no Python API, so
this is a small ctypes binding: synchronous output into a callback that
collects 16-bit samples. libespeak-ng keeps global state, so one instance per
process, and calls are serialised.
"""

from __future__ import annotations

import ctypes
import threading
import unicodedata
from collections import Counter

import espeakng_loader
import numpy as np

from shoal.errors import InvalidRequest, SynthesisError
from shoal.voices import Catalog, Voice
from worker.engines.base import Speech, SynthesisRequest
from worker.engines.text_chunks import split_text

_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 0x01
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1

DEFAULT_VOICE = "en-us"
# Text is spoken in chunks of whole sentences up to this many characters (or the
# job's chunk_length), each handed to `on_audio` as soon as it is spoken.
CHUNK_CHARS = 100
# BCP-47 tags that name an espeak language differently.
_ALIASES = {
    "en": "en-us",
    "zh": "cmn",
    "zh-cn": "cmn",
    "zh-sg": "cmn",
    "zh-hans": "cmn",
    "zh-tw": "cmn",
    "zh-hant": "cmn",
    "zh-cmn": "cmn",
    "zh-hk": "yue",
    "zh-mo": "yue",
    "zh-yue": "yue",
    "pt": "pt",
    "nb": "nb",
    "no": "nb",
}
# Unicode script (first word of a letter's name) -> language, for text given
# without voice or language: espeak would otherwise spell Chinese out in English.
_SCRIPT_LANGUAGES = {
    "CJK": "zh",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "HANGUL": "ko",
    "ARABIC": "ar",
    "HEBREW": "he",
    "CYRILLIC": "ru",
    "GREEK": "el",
    "DEVANAGARI": "hi",
    "BENGALI": "bn",
    "TAMIL": "ta",
    "THAI": "th",
    "GEORGIAN": "ka",
    "ARMENIAN": "hy",
}


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def detect_language(text: str) -> str | None:
    """The language of the text's dominant non-Latin script, if it has one."""
    scripts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            scripts[unicodedata.name(char, "UNKNOWN").split(" ")[0]] += 1
    if not scripts:
        return None
    if scripts["HIRAGANA"] + scripts["KATAKANA"] and scripts["CJK"]:
        return "ja"  # Japanese mixes kanji with kana
    script, _ = scripts.most_common(1)[0]
    return _SCRIPT_LANGUAGES.get(script)


class EspeakEngine:
    name = "espeak"
    slots = 1  # libespeak-ng has global state: one job at a time

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"libespeak-ng failed to initialise from {data_path.decode()}")
        self._lib = lib
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._stop = SynthesisRequest("").should_stop
        self._callback = _SynthCallback(self._collect)  # kept alive: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._identifiers, self._catalog = self._list_voices()

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        return 1 if self._stop() else 0  # non-zero aborts synthesis

    def _list_voices(self) -> tuple[dict[str, bytes], Catalog]:
        identifiers: dict[str, bytes] = {}
        voices: list[Voice] = []
        languages: dict[str, str] = {}
        entries = self._lib.espeak_ListVoices(None)
        index = 0
        while entries[index]:
            entry = entries[index].contents
            index += 1
            identifier = entry.identifier
            voice_id = identifier.decode().rsplit("/", 1)[-1].lower()
            # `languages` is priority byte + tag; the first tag is the voice's own.
            language = entry.languages[1:].decode().lower() if entry.languages else None
            if voice_id in identifiers:
                continue
            identifiers[voice_id] = identifier
            voices.append(
                Voice(id=voice_id, name=entry.name.decode(), language=language, engine=self.name)
            )
            if language:
                languages.setdefault(language, voice_id)
                languages.setdefault(language.split("-")[0], voice_id)
        for tag, target in _ALIASES.items():
            if target in identifiers:
                languages[tag] = target
        catalog = Catalog(
            engine=self.name,
            sample_rate=self.sample_rate,
            default_voice=DEFAULT_VOICE,
            voices=sorted(voices, key=lambda v: v.id),
            languages=dict(sorted(languages.items())),
        )
        return identifiers, catalog

    def catalog(self) -> Catalog:
        return self._catalog

    def _voice_for(self, request: SynthesisRequest) -> str:
        if request.voice is not None:
            return request.voice
        language = request.language or detect_language(request.text)
        if language is not None:
            try:
                return self._catalog.resolve(None, language) or DEFAULT_VOICE
            except InvalidRequest:
                pass  # a script we have no voice for: the default voice reads it
        return DEFAULT_VOICE

    def synthesize(self, request: SynthesisRequest) -> Speech:
        """Speak the text chunk by chunk (whole sentences), streaming each chunk's audio."""
        voice_id = self._voice_for(request)
        identifier = self._identifiers.get(voice_id)
        if identifier is None:
            raise SynthesisError(f"espeak has no voice {voice_id!r}", code="unknown_voice")
        pieces = []
        for chunk in split_text(request.text, request.params.chunk_length or CHUNK_CHARS):
            if request.should_stop():
                break
            samples = self._speak(chunk, identifier, voice_id, request)
            if len(samples):
                pieces.append(samples)
                if request.on_audio is not None:
                    request.on_audio(samples)
        if not pieces and not request.should_stop():
            raise SynthesisError("the text produced no speech", code="no_speech")
        samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return Speech(samples=samples, sample_rate=self.sample_rate)

    def _speak(
        self, chunk: str, identifier: bytes, voice_id: str, request: SynthesisRequest
    ) -> np.ndarray:
        text = chunk.encode("utf-8")
        with self._lock:
            self._chunks = []
            self._stop = request.should_stop
            if self._lib.espeak_SetVoiceByName(identifier) != 0:
                raise SynthesisError(
                    f"espeak could not select voice {voice_id!r}", code="unknown_voice"
                )
            status = self._lib.espeak_Synth(
                text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
            )
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if status != 0:
            raise SynthesisError(f"espeak failed with status {status}", code="engine_error")
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate(chunks).astype(np.float32) / 32768.0).astype(np.float32)
