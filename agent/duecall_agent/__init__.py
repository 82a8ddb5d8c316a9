"""duecall's payment-reminder voice agent (LiveKit) and its signed call-status webhook client.

Modules: ``metadata`` (SPEC §3 input), ``outcomes`` (what a call achieved, with the rules),
``sip`` (SIP failures → events), ``webhook_client`` (SPEC §2 output, signed and retried),
``report`` (order of the reports), ``transcript``, ``providers`` (STT/LLM/TTS/VAD from env) and
``agent`` (the livekit-agents worker). Only ``agent`` and ``providers`` import livekit-agents.
"""

__version__ = "0.1.0"
