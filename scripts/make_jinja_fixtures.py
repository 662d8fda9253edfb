#!/usr/bin/env python3
"""Golden outputs for the Jinja interpreter (Sources/ITuneJinja).

Each case is a template and a context, rendered by transformers' own chat-template environment
(transformers.utils.chat_template_utils._compile_jinja_template: jinja2's
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loopcontrols, raise_exception,
strftime_now and a tojson without ASCII escaping). A case that fails records the error kind
instead of text. Output: Tests/Fixtures/jinja/constructs.json.

    python3 scripts/make_jinja_fixtures.py
"""
import json
import pathlib

import jinja2
from transformers.utils.chat_template_utils import _compile_jinja_template, _render_with_assistant_indices

MSGS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "  こんにちは、世界!  "},
    {"role": "assistant", "content": "Hello.\nHow can I help?"},
    {"role": "user", "content": "What's 2+2?"},
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "天気を調べる",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

CASES = [
    # whitespace control and transformers' trim_blocks / lstrip_blocks
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("lstrip_blocks", "line\n    {% if true %}\n    body\n    {% endif %}\nend", {}),
    ("lstrip_plus_keeps", "a\n    {%+ if true %}x{% endif %}", {}),
    ("dash_left_right", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}\n  c", {}),
    ("variable_dash", "a   {{- 'x' -}}   b", {}),
    ("variable_no_trim", "{{ 'x' }}\n{{ 'y' }}\n", {}),
    ("comment", "a {# note #}\nb\n  {# own line #}\nc {#- strip -#}  d", {}),
    ("trailing_newline_dropped", "text\n", {}),
    ("crlf_normalised", "a\r\nb\rc", {}),
    ("raw", "{% raw %}{{ not evaluated }}{% endraw %}!", {}),
    # if / elif / else, boolean logic, comparisons
    ("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %}", {}),
    ("and_or_not", "{{ true and false }} {{ true or false }} {{ not true }} {{ 0 or 'x' }} {{ '' and 1 }} {{ not none }}", {}),
    ("compare_chain", "{{ 1 < 2 < 3 }} {{ 3 > 2 >= 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ [1,2] == [1,2] }} {{ 1 != 2 }}", {}),
    ("in_not_in", "{{ 'ell' in 'hello' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 'z' not in 'abc' }}", {}),
    ("conditional_expr", "{{ 'a' if true else 'b' }}|{{ 'a' if false else 'b' }}|{{ 'a' if false }}|", {}),
    # arithmetic and literals
    ("arithmetic", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 10 / 5 }}", {}),
    ("concat_tilde", "{{ 'a' ~ 1 ~ none ~ true }} {{ 'x' + 'y' }} {{ [1] + [2] }} {{ 'ab' * 3 }}", {}),
    ("literals_repr", "{{ [1, 'a', none, true, 1.0, {'k': 'v'}] }} {{ {'a': [1, 2]} }} {{ 0.1 }} {{ 1e-5 }} {{ 3.0 }} {{ (1, 2) | list }}", {}),
    ("string_escapes", "{{ 'a\\nb' }}|{{ \"it's\" }}|{{ 'tab\\tend' }}|{{ '\\u3042' }}|{{ 'x' 'y' }}", {}),
    ("unary", "{{ -3 }} {{ - 2 + 5 }} {{ -(1 + 2) }} {{ +4 }}", {}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ not 1 == 2 }} {{ 'a' ~ (1 + 2) }} {{ -3 | abs }}", {}),
    ("error_concat_binds_tighter_than_plus", "{{ 'a' ~ 1 + 2 }}", {}),
    # for loops
    ("loop_vars", "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.revindex }};{% endfor %}", {"messages": MSGS}),
    ("loop_filter", "{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}{{ ',' if not loop.last }}{% endfor %}", {"messages": MSGS}),
    ("loop_else", "{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("loop_unpack_items", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", {}),
    ("loop_dict_keys", "{% for k in {'z': 1, 'a': 2} %}{{ k }}{% endfor %}", {}),
    ("loop_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("loop_prev_next_cycle", "{% for x in [1,2,3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}:{{ loop.cycle('a','b') }} {% endfor %}", {}),
    ("nested_loops", "{% for a in [1,2] %}{% for b in ['x','y'] %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("range", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }}", {}),
    # set, scoping, namespace
    ("set_simple", "{% set x = 'a' %}{% set y, z = 1, 2 %}{{ x }}{{ y }}{{ z }}", {}),
    ("set_in_loop_does_not_leak", "{% set x = 0 %}{% for i in [1,2] %}{% set x = i %}{{ x }}{% endfor %}|{{ x }}", {}),
    ("set_in_if_leaks", "{% if true %}{% set x = 'in' %}{% endif %}{{ x }}", {}),
    ("set_block", "{% set body %}hello {{ 'world' }}{% endset %}[{{ body }}]", {}),
    ("namespace", "{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}", {"messages": MSGS}),
    ("loop_carried_set", "{% for i in [1,2,3] %}{% if i > 1 %}{{ prev }}{% endif %}{% set prev = i %}{% endfor %}", {}),
    # macros
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
    ("macro_sees_globals", "{% set sep = '|' %}{% macro wrap(x) %}{{ sep }}{{ x }}{{ sep }}{% endmacro %}{{ wrap(bos_token) }}", {"bos_token": "<s>"}),
    ("macro_recursive", "{% macro render(v) %}{% if v is mapping %}{% for k, x in v.items() %}{{ k }}:({{ render(x) }}){% endfor %}{% else %}{{ v }}{% endif %}{% endmacro %}{{ render({'a': {'b': 1}, 'c': 2}) }}", {}),
    # slicing and indexing
    ("slicing", "{{ messages[1:] | length }} {{ messages[-1].role }} {{ messages[::-1][0].role }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ [1,2,3,4,5][::2] }} {{ [1,2,3][:-1] }} {{ 'あいう'[1] }}", {"messages": MSGS}),
    ("index_and_attr", "{{ messages[0]['role'] }} {{ messages[0].content }} {{ messages[9] is defined }} {{ messages[0].missing is defined }}", {"messages": MSGS}),
    # tests
    ("tests", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is sequence }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 1 is eq 1 }} {{ [] is iterable }} {{ 'a' is not string }} {{ 2 is in [1, 2] }}", {"x": 1}),
    ("test_content_kinds", "{% for m in msgs %}{% if m.content is string %}S{% elif m.content is iterable %}L{% for p in m.content %}{{ p.text }}{% endfor %}{% endif %}{% endfor %}", {"msgs": [{"content": "a"}, {"content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}]}]}),
    # string methods
    ("string_methods", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ s.upper() }}][{{ s.lower() }}][{{ s.title() }}][{{ s.replace('o', '0') }}][{{ s.strip().startswith('Hello') }}][{{ s.strip().endswith(('x', 'd!')) }}][{{ s.split() }}][{{ 'a,b,,c'.split(',') }}][{{ 'a b c'.split(' ', 1) }}][{{ 'xxhixx'.strip('x') }}][{{ \"they're bill's\".title() }}][{{ 'hELLO world'.capitalize() }}][{{ '-'.join(['a','b']) }}]", {"s": "  Hello wOrld!  "}),
    ("string_methods_japanese", "{{ s.strip() }}|{{ s.split('、') }}|{{ s.replace('世界', 'せかい') }}|{{ s | length }}", {"s": "  こんにちは、世界!  "}),
    # filters
    ("filter_trim_length", "[{{ '  a b  ' | trim }}][{{ 'xxaxx' | trim('x') }}][{{ messages | length }}][{{ 'あいう' | length }}][{{ {'a':1} | count }}]", {"messages": MSGS}),
    ("filter_tojson", "{{ tools | tojson }}|{{ 'é\"<>&\\'' | tojson }}|{{ {'a': [1, 2.5, none, true]} | tojson }}|{{ [] | tojson }}|{{ {} | tojson }}", {"tools": TOOLS}),
    ("filter_tojson_indent", "{{ tools | tojson(indent=4) }}\n{{ {'a': {}, 'b': []} | tojson(indent=2) }}\n{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}\n{{ {'a': 1, 'b': 2} | tojson(separators=(',', ':')) }}", {"tools": TOOLS}),
    ("filter_indent", "[{{ 'a\\nb\\n\\nc' | indent }}][{{ 'a\\nb' | indent(2, true) }}][{{ 'a\\n\\nb' | indent(width=2, blank=true) }}][{{ 'x\\ny' | indent('--') }}]", {}),
    ("filter_join_first_last", "{{ ['a','b','c'] | join(', ') }} {{ [1,2] | join }} {{ messages | map(attribute='role') | join(',') }} {{ [1,2,3] | first }} {{ [1,2,3] | last }} {{ 'abc' | first }} {{ [] | first is defined }}", {"messages": MSGS}),
    ("filter_default", "{{ x | default('d') }} {{ y | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | d('n') }} {{ z | d }}.", {"y": "set"}),
    ("filter_list_items", "{{ 'ab' | list }} {% for k, v in {'a': 1, 'b': 2} | items %}{{ k }}{{ v }}{% endfor %} {{ {'k': 'v'} | list }}", {}),
    ("filter_selectattr_map", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} {{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | list }} {{ [{'a': 1}, {'b': 2}] | selectattr('a') | list }} {{ [{'a': 1}, {'b': 2}] | selectattr('a', 'defined') | list | length }} {{ ['a', 'B'] | map('upper') | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3] | reject('even') | list }}", {"messages": MSGS}),
    ("filter_case_replace", "{{ 'Ab' | upper }} {{ 'Ab' | lower }} {{ 'hello world-x' | title }} {{ 'hELLO' | capitalize }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 123 | string }} {{ '42' | int + 1 }} {{ '2.5' | float }} {{ -3 | abs }} {{ 2.567 | round(2) }}", {}),
    ("filter_misc", "{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ [1, 2, 1] | unique | list }} {{ [1, 2] | reverse | list }} {{ [1, 2, 3] | sum }} {{ [3, 1] | min }} {{ [3, 1] | max }} {% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}{{ v }}{% endfor %}", {}),
    ("dict_methods", "{{ d.get('a') }} {{ d.get('z', 'none') }} {{ d.get('z') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d['a'] }} {{ d.a }}", {"d": {"a": 1, "b": "x"}}),
    # transformers' globals
    ("raise_exception", "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}", {"messages": MSGS}),
    ("special_tokens_and_flags", "{{ bos_token }}{% for m in messages %}{{ m.role }}{% endfor %}{% if add_generation_prompt %}<gen>{% endif %}{{ eos_token }}{{ tools is none }}{{ documents is none }}", {"bos_token": "<s>", "eos_token": "</s>", "messages": MSGS, "add_generation_prompt": True, "tools": None, "documents": None}),
    ("strftime_fixed", "{{ strftime_now('%Y') | length }}", {}),
    ("generation_block", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}", {"messages": MSGS}),
    ("dict_global", "{{ dict(a=1, b='x') }} {{ dict({'k': 1}, z=2) }}", {}),
    ("filter_block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}", {}),
    ("none_and_bool_print", "{{ none }} {{ true }} {{ false }} {{ undefined_thing }}|", {}),
    # errors: the template refuses the input or the expression is invalid
    ("error_undefined_attribute", "{{ missing.attr }}", {}),
    ("error_syntax_unclosed_if", "{% if true %}never closed", {}),
    ("error_unknown_filter", "{{ 1 | no_such_filter }}", {}),
    ("error_type", "{{ 1 + 'a' }}", {}),
    ("error_sandbox_append", "{% set l = [1] %}{{ l.append(2) }}", {}),
]


def main():
    out = []
    for name, template, ctx in CASES:
        case = {"name": name, "template": template, "context": ctx}
        try:
            compiled = _compile_jinja_template(template)
            case["output"] = compiled.render(**ctx)
            if "generation" in template:
                _, spans = _render_with_assistant_indices(compiled_template=compiled, **ctx, tools=None, documents=None, add_generation_prompt=False)
                case["generation_spans"] = spans  # [start, end) in Python characters (code points)
        except jinja2.exceptions.TemplateSyntaxError as e:
            case["error"] = "syntax"
            case["error_line"] = e.lineno
        except jinja2.exceptions.TemplateError as e:
            # raise_exception raises a plain TemplateError; jinja2's own failures are subclasses.
            case["error"] = "raised" if type(e) is jinja2.exceptions.TemplateError else "runtime"
            case["message"] = str(e)
        except Exception as e:  # TypeError and friends from Python operators
            case["error"] = "runtime"
            case["message"] = f"{type(e).__name__}: {e}"
        out.append(case)
    path = pathlib.Path(__file__).resolve().parent.parent / "Tests/Fixtures/jinja/constructs.json"
    path.write_text(json.dumps({"jinja2": jinja2.__version__, "cases": out}, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(out)} cases to {path}")


if __name__ == "__main__":
    main()
