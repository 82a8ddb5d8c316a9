"""``python -m duecall_agent start|dev|console|download-files`` — LiveKit's worker commands.

``console`` runs one call on this machine with your microphone and speaker as the customer: no
room, no dialling; the call's metadata is ``DUECALL_SAMPLE_METADATA`` (JSON, or a path to a JSON
file, in SPEC §3's shape) or a built-in sample, and without ``DUECALL_WEBHOOK_URL`` the reports are
printed instead of sent. The providers' keys (``AGENT_STT``/``AGENT_LLM``/``AGENT_TTS``) are still
needed: it is the real conversation.
"""

from .agent import main

if __name__ == "__main__":
    main()
