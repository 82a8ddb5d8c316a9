"""Speech-to-text, LLM, text-to-speech and VAD chosen by environment variables.

Each of ``AGENT_STT``, ``AGENT_LLM``, ``AGENT_TTS`` is ``<provider>:<model>``:

| variable    | default              | providers                                                      |
|-------------|----------------------|----------------------------------------------------------------|
| AGENT_STT   | deepgram:nova-3      | ``deepgram``, ``openai``, ``cartesia``, ``inference``          |
| AGENT_LLM   | openai:gpt-4.1-mini  | ``openai``, ``inference``                                      |
| AGENT_TTS   | cartesia:sonic-3     | ``cartesia``, ``openai``, ``deepgram``, ``inference``          |
| AGENT_TTS_VOICE | (provider default) | voice id for the TTS                                         |
| AGENT_TTS_VOICE_<LANG> | AGENT_TTS_VOICE | voice for reminders in that language, e.g. AGENT_TTS_VOICE_ES |
| AGENT_VAD   | silero               | ``silero`` (bundled model, no download) or ``none``            |

``inference:<provider>/<model>`` (e.g. ``inference:deepgram/nova-3``) uses LiveKit Inference,
available on LiveKit Cloud with no extra key; the reminder's language reaches every route (STT
and TTS get it as their ``language``; a voice per language comes from ``AGENT_TTS_VOICE_<LANG>``,
e.g. ``AGENT_TTS_VOICE_ES`` for ``es``/``es-MX``, since a voice usually speaks one language); the plugin providers read their own keys
(``DEEPGRAM_API_KEY``, ``OPENAI_API_KEY``, ``CARTESIA_API_KEY``). ``OPENAI_BASE_URL`` points the
openai plugin at any OpenAI-compatible server.

The plugins are imported here, at import time: livekit-agents registers plugins only from the
main thread, and the worker imports this module there.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from livekit.agents import inference
from livekit.plugins import cartesia, deepgram, openai, silero

__all__ = ["ProviderSpec", "ProviderError", "parse_spec", "ProviderConfig", "build_stt", "build_llm", "build_tts", "build_vad"]

DEFAULTS = {
    "AGENT_STT": "deepgram:nova-3",
    "AGENT_LLM": "openai:gpt-4.1-mini",
    "AGENT_TTS": "cartesia:sonic-3",
    "AGENT_VAD": "silero",
}

STT_PROVIDERS = ("deepgram", "openai", "cartesia", "inference")
LLM_PROVIDERS = ("openai", "inference")
TTS_PROVIDERS = ("cartesia", "openai", "deepgram", "inference")


class ProviderError(ValueError):
    """A provider variable names an unknown provider or no model (the message names the variable)."""


@dataclasses.dataclass(frozen=True)
class ProviderSpec:
    provider: str
    model: str


def parse_spec(var: str, value: str, allowed: tuple[str, ...]) -> ProviderSpec:
    provider, sep, model = value.strip().partition(":")
    provider, model = provider.strip().lower(), model.strip()
    if not sep or not provider or not model:
        raise ProviderError(f"{var}: expected <provider>:<model>, e.g. {DEFAULTS[var]}")
    if provider not in allowed:
        raise ProviderError(f"{var}: unknown provider {provider!r}; one of {', '.join(allowed)}")
    if provider == "inference" and "/" not in model:
        raise ProviderError(f"{var}: LiveKit Inference models are <provider>/<model>, e.g. deepgram/nova-3")
    return ProviderSpec(provider, model)


@dataclasses.dataclass(frozen=True)
class ProviderConfig:
    stt: ProviderSpec
    llm: ProviderSpec
    tts: ProviderSpec
    tts_voice: str | None
    vad: str  # "silero" | "none"
    # AGENT_TTS_VOICE_<LANG>: base language (lower case) → voice
    tts_voices: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def voice_for(self, language: str) -> str | None:
        """The TTS voice for a reminder's language: ``AGENT_TTS_VOICE_<LANG>``, else ``AGENT_TTS_VOICE``."""
        return self.tts_voices.get(_base_language(language)) or self.tts_voice

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ProviderConfig":
        env = os.environ if env is None else env

        def get(var: str) -> str:
            return (env.get(var) or "").strip() or DEFAULTS[var]

        vad = get("AGENT_VAD").lower()
        if vad not in ("silero", "none"):
            raise ProviderError("AGENT_VAD: silero or none")
        return cls(
            stt=parse_spec("AGENT_STT", get("AGENT_STT"), STT_PROVIDERS),
            llm=parse_spec("AGENT_LLM", get("AGENT_LLM"), LLM_PROVIDERS),
            tts=parse_spec("AGENT_TTS", get("AGENT_TTS"), TTS_PROVIDERS),
            tts_voice=(env.get("AGENT_TTS_VOICE") or "").strip() or None,
            vad=vad,
            tts_voices={
                k[len("AGENT_TTS_VOICE_") :].lower(): v.strip()
                for k, v in env.items()
                if k.startswith("AGENT_TTS_VOICE_") and len(k) > len("AGENT_TTS_VOICE_") and (v or "").strip()
            },
        )


def _base_language(language: str) -> str:
    return language.split("-")[0].lower()


def build_stt(spec: ProviderSpec, language: str) -> Any:
    if spec.provider == "inference":
        return inference.STT(model=spec.model, language=language)
    if spec.provider == "deepgram":
        return deepgram.STT(model=spec.model, language=language)
    if spec.provider == "openai":
        return openai.STT(model=spec.model, language=_base_language(language))
    if spec.provider == "cartesia":
        return cartesia.STT(model=spec.model, language=_base_language(language))
    raise ProviderError(f"AGENT_STT: unsupported provider {spec.provider}")


def build_llm(spec: ProviderSpec) -> Any:
    if spec.provider == "inference":
        return spec.model
    if spec.provider == "openai":
        base_url = (os.environ.get("OPENAI_BASE_URL") or "").strip()
        kwargs: dict[str, Any] = {"model": spec.model, "temperature": 0.3}
        if base_url:
            kwargs["base_url"] = base_url
        return openai.LLM(**kwargs)
    raise ProviderError(f"AGENT_LLM: unsupported provider {spec.provider}")


def build_tts(spec: ProviderSpec, language: str, voice: str | None) -> Any:
    if spec.provider == "inference":
        if voice:
            return inference.TTS(model=spec.model, voice=voice, language=language)
        return inference.TTS(model=spec.model, language=language)
    if spec.provider == "cartesia":
        kwargs: dict[str, Any] = {"model": spec.model, "language": _base_language(language)}
        if voice:
            kwargs["voice"] = voice
        return cartesia.TTS(**kwargs)
    if spec.provider == "openai":
        # OpenAI's voices speak whatever language the text is in; the LLM writes in the reminder's
        kwargs = {"model": spec.model}
        if voice:
            kwargs["voice"] = voice
        return openai.TTS(**kwargs)
    if spec.provider == "deepgram":
        # Deepgram's TTS model names carry the voice, e.g. aura-2-thalia-en
        return deepgram.TTS(model=voice or spec.model)
    raise ProviderError(f"AGENT_TTS: unsupported provider {spec.provider}")


def build_vad(kind: str) -> Any:
    """Silero's model ships inside the plugin wheel: loading it needs no network."""
    if kind == "none":
        return None
    return silero.VAD.load(sample_rate=8000)
