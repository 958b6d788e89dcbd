#!/usr/bin/env python3
"""Records the reference outputs llmrt's tokenizer tests compare against:
HF `tokenizers` encode/decode over tests/tokenizer/corpus.json for each real
vocabulary, and transformers' apply_chat_template renderings of a few
conversations for each supported chat template family.

    python3 tests/tokenizer/make_refs.py --data DIR --out tests/tokenizer/refs

DIR is what scripts/fetch-test-data.sh fills (default: $LLMRT_TESTDATA or
~/.cache/llmrt/testdata): DIR/{gpt2,llama2,llama3,qwen3}/tokenizer.json and
tokenizer_config.json. Needs the Python packages `tokenizers` and (for the
chat templates) `transformers`; no network. Without transformers the
templates are rendered with jinja2 set up the way transformers sets it up.
Without `tokenizers`, --node-tokenizers DIR uses the Node.js bindings of the
same Rust library (npm package "tokenizers", installed under DIR).

Writes OUT/<name>.json (encode without and with special tokens, decode with
and without skip_special_tokens, and the DecodeStream chunks when the Python
binding has it) and OUT/chat_<family>.json. Runs in a few seconds.
"""
import argparse
import json
import os
import subprocess
import sys

NAMES = ["gpt2", "llama2", "llama3", "qwen3"]
HERE = os.path.dirname(os.path.abspath(__file__))

# Templates that the npm packages do not ship, as their checkpoints publish
# them (meta-llama/Llama-2-7b-chat-hf, mistralai/Mistral-7B-Instruct-v0.1,
# Qwen/Qwen2-7B-Instruct, and plain ChatML).
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are a pirate."},
     {"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": " Paris.  "},
     {"role": "user", "content": "And of Germany?"}],
    [{"role": "user", "content": "  Hi\n"},
     {"role": "assistant", "content": "Hello! How can I help?\n"},
     {"role": "user", "content": "Tell me a joke about 日本語 👍"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "x"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "<think>\nLet me add.\n</think>\n\n4"},
     {"role": "user", "content": "And 3+3?"},
     {"role": "assistant", "content": "6", "reasoning_content": "Adding again."}],
    [{"role": "user", "content": "Weather?"},
     {"role": "assistant", "content": "Checking."},
     {"role": "tool", "content": "{\"temp\": 21}"},
     {"role": "tool", "content": "{\"rain\": false}"},
     {"role": "user", "content": "Thanks"}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\nr1\n\n</think>\n\n\nanswer"}],
]


def load_corpus(path):
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    out = []
    for c in cases:
        if "hex" in c:
            out.append({"hex": c["hex"], "text": bytes.fromhex(c["hex"]).decode("utf-8", "replace")})
        else:
            out.append({"text": c["text"]})
    return out


def run_python(tokenizer_path, texts):
    import tokenizers
    tok = tokenizers.Tokenizer.from_file(tokenizer_path)
    try:
        from tokenizers.decoders import DecodeStream
    except ImportError:
        DecodeStream = None
    results = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_special = tok.encode(text, add_special_tokens=True).ids
        r = {"ids": ids, "ids_special": ids_special,
             "decoded": tok.decode(ids_special, skip_special_tokens=False),
             "decoded_skip": tok.decode(ids_special, skip_special_tokens=True)}
        if DecodeStream is not None:
            stream = DecodeStream(skip_special_tokens=False)
            r["stream"] = [stream.step(tok, i) or "" for i in ids_special]
        results.append(r)
    return results, "tokenizers %s (python)" % tokenizers.__version__


NODE_PROGRAM = r"""
const { Tokenizer } = require('tokenizers');
const req = JSON.parse(require('fs').readFileSync(0, 'utf8'));
(async () => {
  const tok = Tokenizer.fromFile(req.path);
  const out = [];
  for (const text of req.texts) {
    const a = (await tok.encode(text, null, {addSpecialTokens: false})).getIds();
    const b = (await tok.encode(text, null, {addSpecialTokens: true})).getIds();
    out.push({ids: Array.from(a), ids_special: Array.from(b),
              decoded: await tok.decode(Array.from(b), false), decoded_skip: await tok.decode(Array.from(b), true)});
  }
  const version = require('tokenizers/package.json').version;
  process.stdout.write(JSON.stringify({version, out}));
})();
"""


def run_node(node_dir, tokenizer_path, texts):
    env = dict(os.environ, NODE_PATH=os.path.join(node_dir, "node_modules"))
    req = json.dumps({"path": tokenizer_path, "texts": texts})
    p = subprocess.run(["node", "-e", NODE_PROGRAM], input=req.encode(), capture_output=True, env=env, check=True)
    res = json.loads(p.stdout)
    return res["out"], "tokenizers %s (node)" % res["version"]


def render_factory():
    """Returns render(template, messages, add_generation_prompt, extra, bos, eos) and its name."""
    try:
        from transformers.utils.chat_template_utils import render_jinja_template  # transformers >= 4.50

        def render(template, messages, agp, extra, bos, eos):
            kwargs = dict(extra)
            if bos is not None:
                kwargs["bos_token"] = bos
            if eos is not None:
                kwargs["eos_token"] = eos
            rendered, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                                add_generation_prompt=agp, **kwargs)
            return rendered[0]
        import transformers
        return render, "transformers %s render_jinja_template" % transformers.__version__
    except ImportError:
        pass
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception

    def render(template, messages, agp, extra, bos, eos):
        kwargs = dict(extra)
        if bos is not None:
            kwargs["bos_token"] = bos
        if eos is not None:
            kwargs["eos_token"] = eos
        return env.from_string(template).render(messages=messages, add_generation_prompt=agp, **kwargs)
    return render, "jinja2 %s (transformers' settings)" % jinja2.__version__


def chat_refs(data, out_dir):
    import jinja2
    render, renderer = render_factory()

    def config(name):
        with open(os.path.join(data, name, "tokenizer_config.json"), encoding="utf-8") as f:
            return json.load(f)
    families = [
        ("llama2", LLAMA2_TEMPLATE, "<s>", "</s>"),
        ("mistral", MISTRAL_TEMPLATE, "<s>", "</s>"),
        ("llama3", config("llama3")["chat_template"], config("llama3").get("bos_token"), config("llama3").get("eos_token")),
        ("qwen3", config("qwen3")["chat_template"], config("qwen3").get("bos_token"), config("qwen3").get("eos_token")),
        ("chatml", CHATML_TEMPLATE, None, None),
        ("qwen2", QWEN2_TEMPLATE, None, "<|im_end|>"),
    ]
    for family, template, bos, eos in families:
        cases = []
        for messages in CONVERSATIONS:
            variants = [(False, {}), (True, {})]
            if family == "qwen3":
                variants += [(True, {"enable_thinking": False}), (True, {"enable_thinking": True})]
            for agp, extra in variants:
                case = {"messages": messages, "add_generation_prompt": agp}
                case.update(extra)
                try:
                    case["rendered"] = render(template, messages, agp, extra, bos, eos)
                except jinja2.exceptions.TemplateError as e:  # the template's raise_exception
                    case["error"] = str(e)
                cases.append(case)
        doc = {"family": family, "renderer": renderer, "template": template, "bos_token": bos, "eos_token": eos,
               "cases": cases}
        with open(os.path.join(out_dir, "chat_%s.json" % family), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = os.environ.get("LLMRT_TESTDATA") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "llmrt", "testdata")
    ap.add_argument("--data", default=default_data)
    ap.add_argument("--out", default=os.path.join(HERE, "refs"))
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus.json"))
    ap.add_argument("--node-tokenizers", help="directory with node_modules/tokenizers, used when Python's is missing")
    ap.add_argument("--skip-chat", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    corpus = load_corpus(args.corpus)
    texts = [c["text"] for c in corpus]
    for name in NAMES:
        path = os.path.join(args.data, name, "tokenizer.json")
        if not os.path.exists(path):
            sys.exit("make_refs: %s is missing (run scripts/fetch-test-data.sh %s)" % (path, args.data))
        try:
            results, generator = run_python(path, texts)
        except ImportError:
            if not args.node_tokenizers:
                sys.exit("make_refs: Python package 'tokenizers' not found (or pass --node-tokenizers DIR)")
            results, generator = run_node(args.node_tokenizers, path, texts)
        cases = []
        for c, r in zip(corpus, results):
            case = {"hex": c["hex"]} if "hex" in c else {"text": c["text"]}
            case.update(r)
            cases.append(case)
        with open(os.path.join(args.out, name + ".json"), "w", encoding="utf-8") as f:
            f.write('{"tokenizer": %s, "generator": %s, "cases": [\n' % (json.dumps(name), json.dumps(generator)))
            f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
            f.write("\n]}\n")
        print("make_refs: %s: %d cases (%s)" % (name, len(cases), generator))
    if not args.skip_chat:
        chat_refs(args.data, args.out)
        print("make_refs: chat templates written")


if __name__ == "__main__":
    main()
