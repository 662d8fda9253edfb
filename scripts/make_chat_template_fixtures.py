#!/usr/bin/env python3
"""Golden renderings of real models' chat templates through transformers' apply_chat_template.

For each template in scripts/chat_templates.py (sources named there), a small tokenizer is built
from one of the tokenizer fixtures (Tests/Fixtures/tokenizers/<base>) with the template's marker
strings added as special tokens, and saved with a tokenizer_config.json carrying the template.
Every conversation of CONVERSATIONS is rendered with add_generation_prompt false and true (with
the tool list where the conversation uses tools) and tokenized; a template that refuses a
conversation (raise_exception) records the refusal.

Output, under Tests/Fixtures/chat_templates/:
  conversations.json               the conversations and tool list
  <model>/tokenizer.json           the tokenizer
  <model>/tokenizer_config.json    bos/eos/unk and the chat_template
  <model>/expected.json            [{conversation, add_generation_prompt, text | error, ids}]
  continue_final_message.json      the same with continue_final_message=True (see continue_final_message())

    python3 scripts/make_chat_template_fixtures.py
"""
import json
import pathlib
import sys

import transformers
from tokenizers import AddedToken, Tokenizer
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from chat_templates import MODELS  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/Fixtures/chat_templates"

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "都市の名前"}},
                   "required": ["city"]}}}]

CONVERSATIONS = {
    "system_multi_turn": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?  "},
        {"role": "assistant", "content": " Rome.\n"},
    ],
    "japanese_multi_turn": [
        {"role": "user", "content": "日本で一番高い山は何ですか？"},
        {"role": "assistant", "content": "富士山です。標高は3,776メートルです。"},
        {"role": "user", "content": "では二番目は？"},
        {"role": "assistant", "content": "北岳（3,193メートル）です。"},
    ],
    "single_user": [
        {"role": "user", "content": "Write a haiku about autumn."},
    ],
    "japanese_system": [
        {"role": "system", "content": "あなたは親切なアシスタントです。"},
        {"role": "user", "content": "「ありがとう」を英語で言うと？"},
        {"role": "assistant", "content": "Thank you です。"},
    ],
    "tool_call": [
        {"role": "user", "content": "東京の天気は？"},
        {"role": "assistant", "tool_calls": [{"id": "call12345", "type": "function",
                                              "function": {"name": "get_weather", "arguments": {"city": "東京"}}}]},
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "晴れ、25度"},
        {"role": "assistant", "content": "東京は晴れで、気温は25度です。"},
    ],
}
USES_TOOLS = {"tool_call"}
# Llama 3.x templates print today's date unless told one; a fixed date keeps the fixture stable.
TEMPLATE_KWARGS = {"date_string": "26 Jul 2024"}


def build_tokenizer(template, base, bos, eos, markers):
    tok = Tokenizer.from_file(str(ROOT / "Tests/Fixtures/tokenizers" / base / "tokenizer.json"))
    wanted = [m for m in markers + [t for t in (bos, eos) if t] if tok.token_to_id(m) is None]
    tok.add_special_tokens([AddedToken(m, special=True, normalized=False) for m in dict.fromkeys(wanted)])
    base_config = json.loads((ROOT / "Tests/Fixtures/tokenizers" / base / "tokenizer_config.json").read_text())
    unk = base_config.get("unk_token")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=unk, chat_template=template)
    config = {"bos_token": bos, "eos_token": eos, "unk_token": unk, "chat_template": template,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    return tok, fast, config


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "conversations.json").write_text(json.dumps(
        {"tools": TOOLS, "uses_tools": sorted(USES_TOOLS), "template_kwargs": TEMPLATE_KWARGS,
         "conversations": CONVERSATIONS}, ensure_ascii=False, indent=1) + "\n")
    for name, (template, base, bos, eos, markers, source) in MODELS.items():
        tok, fast, config = build_tokenizer(template, base, bos, eos, markers)
        d = OUT / name
        d.mkdir(exist_ok=True)
        (d / "tokenizer.json").write_text(tok.to_str() + "\n")
        config["source"] = f"chat_template of {source} (scripts/chat_templates.py)"
        (d / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1) + "\n")
        expected = []
        for conv_name, messages in CONVERSATIONS.items():
            for gen in (False, True):
                tools = TOOLS if conv_name in USES_TOOLS else None
                case = {"conversation": conv_name, "add_generation_prompt": gen}
                try:
                    text = fast.apply_chat_template(messages, tools=tools, add_generation_prompt=gen, tokenize=False,
                                                    **TEMPLATE_KWARGS)
                    ids = fast.apply_chat_template(messages, tools=tools, add_generation_prompt=gen, tokenize=True,
                                                   return_dict=False, **TEMPLATE_KWARGS)
                    case["text"] = text
                    case["ids"] = list(ids)
                except Exception as e:  # the template's raise_exception, or a failure inside it
                    case["error"] = f"{type(e).__name__}: {e}"
                expected.append(case)
        (d / "expected.json").write_text(json.dumps({"transformers": transformers.__version__, "cases": expected},
                                                    ensure_ascii=False, indent=1) + "\n")
        errors = sum("error" in c for c in expected)
        print(f"{name}: {len(expected)} renderings, {errors} refused")


if __name__ == "__main__":
    main()


# Reference loss masks: transformers' own assistant masks (return_assistant_tokens_mask) from the
# templates above with {% generation %} blocks around what an assistant turn writes (its text and
# end-of-turn marker, up to where the next message begins). Our masks of the plain templates,
# found by rendering, must equal these; and our {% generation %} spans must give them too.
ANNOTATED = {
    "smollm2-instruct": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endgeneration %}{% else %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "gemma-2-it": "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{{ '<start_of_turn>model\n' }}{% generation %}{{ message['content'] | trim + '<end_of_turn>\n' }}{% endgeneration %}{% else %}{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
    "llama-2-chat": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{% generation %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endgeneration %}{% endif %}{% endfor %}",
}


def assistant_masks():
    out = []
    for name, annotated in ANNOTATED.items():
        template, base, bos, eos, markers, _ = MODELS[name]
        _, fast, _ = build_tokenizer(template, base, bos, eos, markers)
        for conv_name in ["system_multi_turn", "japanese_multi_turn", "japanese_system"]:
            messages = CONVERSATIONS[conv_name]
            try:
                plain = fast.apply_chat_template(messages, tokenize=False)
            except Exception:
                continue  # the template refuses this conversation
            r = fast.apply_chat_template(messages, chat_template=annotated, tokenize=True, return_dict=True,
                                         return_assistant_tokens_mask=True)
            text = fast.apply_chat_template(messages, chat_template=annotated, tokenize=False)
            assert text == plain, f"{name}: the annotated template must render as the plain one"
            out.append({"model": name, "conversation": conv_name, "annotated_template": annotated,
                        "ids": list(r["input_ids"]), "assistant_masks": list(r["assistant_masks"])})
    (OUT / "assistant_masks.json").write_text(json.dumps({"transformers": transformers.__version__, "cases": out},
                                                         ensure_ascii=False, indent=1) + "\n")
    print(f"assistant_masks.json: {len(out)} cases")


if __name__ == "__main__":
    assistant_masks()


def tool_records():
    """The tool-call conversation as a `messages` + `tools` data record would arrive after our
    reader (object keys sorted), rendered and tokenized by transformers."""
    def sort(x):
        return json.loads(json.dumps(x, sort_keys=True, ensure_ascii=False))
    messages, tools = sort(CONVERSATIONS["tool_call"]), sort(TOOLS)
    out = []
    for name in ["qwen2.5-instruct", "llama-3.2-instruct", "mistral-7b-instruct-v0.3"]:
        template, base, bos, eos, markers, _ = MODELS[name]
        _, fast, _ = build_tokenizer(template, base, bos, eos, markers)
        text = fast.apply_chat_template(messages, tools=tools, tokenize=False, **TEMPLATE_KWARGS)
        ids = fast.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=False, **TEMPLATE_KWARGS)
        out.append({"model": name, "text": text, "ids": list(ids)})
    (OUT / "tool_records.json").write_text(json.dumps({"transformers": transformers.__version__, "record": {"messages": messages, "tools": tools},
                                                       "cases": out}, ensure_ascii=False, indent=1) + "\n")
    print(f"tool_records.json: {len(out)} cases")


if __name__ == "__main__":
    tool_records()


# continue_final_message: the final message left open so that generation continues it (the way to
# prefill the start of an answer). Conversations that end in a partial answer (one with a trailing
# space, which templates that trim content cut differently), finished conversations, one that ends
# in a user message, and the tool call; and, for every template, add_generation_prompt together
# with continue_final_message, which transformers refuses.
CONTINUE_CONVERSATIONS = {
    "prefill_ja": [
        {"role": "user", "content": "富士山の高さは？"},
        {"role": "assistant", "content": "富士山の高さは"},
    ],
    "prefill_trailing_space": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Sure, the colour is "},
    ],
    "system_multi_turn": CONVERSATIONS["system_multi_turn"],
    "japanese_multi_turn": CONVERSATIONS["japanese_multi_turn"],
    "single_user": CONVERSATIONS["single_user"],
    "tool_call": CONVERSATIONS["tool_call"],
}


def continue_final_message():
    out = []
    for name, (template, base, bos, eos, markers, _) in MODELS.items():
        _, fast, _ = build_tokenizer(template, base, bos, eos, markers)
        for conv_name, messages in CONTINUE_CONVERSATIONS.items():
            tools = TOOLS if conv_name in USES_TOOLS else None
            for gen in (False, True) if conv_name == "prefill_ja" else (False,):
                case = {"model": name, "conversation": conv_name, "add_generation_prompt": gen}
                try:
                    case["text"] = fast.apply_chat_template(messages, tools=tools, add_generation_prompt=gen, continue_final_message=True,
                                                            tokenize=False, **TEMPLATE_KWARGS)
                    case["ids"] = list(fast.apply_chat_template(messages, tools=tools, add_generation_prompt=gen, continue_final_message=True,
                                                                tokenize=True, return_dict=False, **TEMPLATE_KWARGS))
                except Exception as e:  # the template's raise_exception, or transformers' own refusal
                    case["error"] = f"{type(e).__name__}: {e}"
                out.append(case)
    (OUT / "continue_final_message.json").write_text(json.dumps(
        {"transformers": transformers.__version__, "tools": TOOLS, "uses_tools": sorted(USES_TOOLS),
         "conversations": CONTINUE_CONVERSATIONS, "cases": out}, ensure_ascii=False, indent=1) + "\n")
    print(f"continue_final_message.json: {len(out)} cases, {sum('error' in c for c in out)} refused")


if __name__ == "__main__":
    continue_final_message()
