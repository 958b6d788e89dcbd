"""Checks a server-sent-event stream of the OpenAI API is well formed.

usage: sse_check.py FILE [--usage] [--chat] [--choices N] [--text-out FILE]
Every event is one `data: ` line and a blank line; every payload but the
last is a JSON chunk with the response's id, object and model; the last is
`[DONE]`; each choice ends once with a finish_reason; with --usage the chunk
before [DONE] has "choices": [] and the usage, and no other chunk has usage
numbers. Prints the concatenated text of choice 0 to --text-out."""
import json
import sys


def main():
    args = sys.argv[1:]
    path = args[0]
    want_usage = "--usage" in args
    chat = "--chat" in args
    choices = int(args[args.index("--choices") + 1]) if "--choices" in args else 1
    text_out = args[args.index("--text-out") + 1] if "--text-out" in args else None
    raw = open(path, "rb").read().decode("utf-8")
    if not raw.endswith("\n\n"):
        sys.exit("the stream does not end with a blank line")
    events = raw[:-2].split("\n\n")
    for e in events:
        if not e.startswith("data: ") or "\n" in e:
            sys.exit("malformed event: %r" % e[:200])
    payloads = [e[6:] for e in events]
    if payloads[-1] != "[DONE]":
        sys.exit("the last event is not [DONE]")
    chunks = [json.loads(p) for p in payloads[:-1]]
    if not chunks:
        sys.exit("no chunks")
    ids = {c["id"] for c in chunks}
    if len(ids) != 1:
        sys.exit("chunks carry different ids: %s" % ids)
    obj = "chat.completion.chunk" if chat else "text_completion"
    texts = {}
    finished = {}
    for i, c in enumerate(chunks):
        if c["object"] != obj or not c["model"] or not isinstance(c["created"], int):
            sys.exit("bad envelope: %r" % c)
        if want_usage and i == len(chunks) - 1:
            if c["choices"] != [] or c["usage"]["completion_tokens"] < 1:
                sys.exit("the last chunk is not the usage chunk: %r" % c)
            if c["usage"]["total_tokens"] != c["usage"]["prompt_tokens"] + c["usage"]["completion_tokens"]:
                sys.exit("usage does not add up: %r" % c["usage"])
            continue
        if c.get("usage") is not None:
            sys.exit("usage numbers in a content chunk: %r" % c)
        if not want_usage and "usage" in c:
            sys.exit("a usage key without include_usage: %r" % c)
        for ch in c["choices"]:
            k = ch["index"]
            if k in finished:
                sys.exit("choice %d has content after its finish_reason" % k)
            piece = ch["delta"].get("content", "") if chat else ch["text"]
            texts[k] = texts.get(k, "") + (piece or "")
            if ch["finish_reason"] is not None:
                if ch["finish_reason"] not in ("stop", "length"):
                    sys.exit("finish_reason %r" % ch["finish_reason"])
                finished[k] = ch["finish_reason"]
    if sorted(finished) != list(range(choices)):
        sys.exit("finished choices %s, want %d" % (sorted(finished), choices))
    if text_out:
        open(text_out, "w", encoding="utf-8").write(texts.get(0, ""))


main()
