"""A scripted stand-in for the model: a real ``livekit.agents.llm.LLM`` whose replies are chosen
by the test, not by a network service. No keys, no sockets.

A *reply* is what the model says in one turn: a :class:`Say` (text), a :class:`Call` (a function
tool call), or a list of those (tool calls and text in one turn). A *script* is either

- a list of replies, used one per ``chat()`` call (the framework calls ``chat()`` again after the
  tool outputs of a turn are in the context, so a turn with a tool call takes two steps), or
- a function ``(ctx: ChatContext) -> reply`` that looks at the conversation so far, e.g. the last
  user message (:func:`last_user_text`) and the outputs of the tools (:func:`tool_outputs`).

Every ``chat()`` call is kept in :attr:`ScriptedLLM.requests` (a copy of the chat context, the tool
names offered), so a test can check what the model was shown, e.g. its instructions.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any, Union

from livekit.agents import llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr


@dataclasses.dataclass(frozen=True)
class Say:
    """The model says ``text`` (streamed in a few deltas, as a provider would)."""

    text: str


@dataclasses.dataclass(frozen=True)
class Call:
    """The model calls the function tool ``name`` with ``args`` (sent as JSON)."""

    name: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, name: str, **args: Any) -> "Call":
        return cls(name, dict(args))


Part = Union[Say, Call]
Reply = Union[Part, Sequence[Part], None]  # None: the model says nothing this turn
Script = Union[Sequence[Reply], Callable[[llm.ChatContext], Reply]]


class ScriptExhausted(AssertionError):
    """The conversation asked the model for more turns than the script has."""


@dataclasses.dataclass(frozen=True)
class Request:
    """One ``chat()`` call as the model saw it."""

    chat_ctx: llm.ChatContext
    tool_names: tuple[str, ...]

    @property
    def instructions(self) -> str:
        """The system/developer text the model was given."""
        return "\n".join(
            item.text_content or ""
            for item in self.chat_ctx.items
            if item.type == "message" and item.role in ("system", "developer")
        )


class ScriptedLLM(llm.LLM):
    def __init__(self, script: Script) -> None:
        super().__init__()
        self._script = script
        self._step = 0
        self._ids = itertools.count(1)
        self.requests: list[Request] = []

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "duecall-tests"

    def next_reply(self, chat_ctx: llm.ChatContext) -> list[Part]:
        script = self._script
        if callable(script):
            reply = script(chat_ctx)
        else:
            if self._step >= len(script):
                raise ScriptExhausted(f"the script has {len(script)} replies; the model was asked for another")
            reply = script[self._step]
            self._step += 1
        if reply is None:
            return []
        if isinstance(reply, (Say, Call)):
            return [reply]
        return list(reply)

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> "ScriptedStream":
        tools = list(tools or [])
        names = tuple(sorted(n for n in (getattr(t, "id", None) or _tool_name(t) for t in tools) if n))
        self.requests.append(Request(chat_ctx.copy(), names))
        # the reply is chosen now, from the context as the model was asked (not as it is later)
        parts = self.next_reply(chat_ctx)
        return ScriptedStream(self, parts, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)

    def new_call_id(self) -> str:
        return f"call_{next(self._ids)}"


def _tool_name(tool: Any) -> str | None:
    info = getattr(tool, "info", None)
    return getattr(info, "name", None)


class ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, parts: list[Part], **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._owner = owner
        self._parts = parts

    async def _run(self) -> None:
        request_id = f"scripted-{len(self._owner.requests)}"
        for part in self._parts:
            if isinstance(part, Say):
                words = part.text.split(" ")
                for i, word in enumerate(words):
                    delta = word if i == 0 else " " + word
                    self._event_ch.send_nowait(
                        llm.ChatChunk(id=request_id, delta=llm.ChoiceDelta(role="assistant", content=delta))
                    )
            else:
                call = llm.FunctionToolCall(
                    name=part.name, arguments=json.dumps(part.args), call_id=self._owner.new_call_id()
                )
                self._event_ch.send_nowait(
                    llm.ChatChunk(id=request_id, delta=llm.ChoiceDelta(role="assistant", tool_calls=[call]))
                )


# ---- reading the conversation, for script functions ---------------------------------------------


def last_user_text(ctx: llm.ChatContext) -> str:
    """The newest user message's text ("" when there is none)."""
    for item in reversed(ctx.items):
        if item.type == "message" and item.role == "user":
            return item.text_content or ""
    return ""


def tool_outputs(ctx: llm.ChatContext, name: str | None = None) -> list[llm.FunctionCallOutput]:
    """The outputs of the function tools so far (of tool ``name`` only, when given), oldest first."""
    return [
        item
        for item in ctx.items
        if item.type == "function_call_output" and (name is None or item.name == name)
    ]


def answered_since_user(ctx: llm.ChatContext) -> list[llm.FunctionCallOutput]:
    """The tool outputs after the newest user message: what this turn's calls returned so far."""
    out: list[llm.FunctionCallOutput] = []
    for item in reversed(ctx.items):
        if item.type == "message" and item.role == "user":
            break
        if item.type == "function_call_output":
            out.append(item)
    return list(reversed(out))
