"""Streaming against a real server: concatenated deltas == the non-streamed answer; stop
strings (inside a token and spanning tokens) end with "stop" and are never emitted;
max_tokens ends with "length" after exactly max_tokens tokens; logprobs."""
import asyncio
import math

from serving_util import PROMPTS, AsyncClient, Client, serve
from tap import diag, done_testing, ok


def stream_all(c, prompt, **kw):
    ds = list(c.stream(prompt, **kw))
    return ds, ''.join(d.text for d in ds), sum((d.tokens for d in ds), [])


with serve() as srv:
    c = Client(srv.endpoint, timeout=120)

    # ---- stream == non-stream ----
    for p, kw in [(PROMPTS[0], dict(temperature=0, max_tokens=64)),
                  (PROMPTS[1], dict(temperature=0, max_tokens=100, ignore_eos=True)),
                  (PROMPTS[2], dict(temperature=0.9, top_p=0.9, seed=1234, max_tokens=64)),
                  (PROMPTS[3], dict(temperature=1.0, top_k=20, seed=99, max_tokens=64, ignore_eos=True))]:
        r = c.generate(p, **kw)
        ds, text, toks = stream_all(c, p, **kw)
        what = '%r %s' % (p, kw)
        ok(text == r.text and toks == r.tokens, 'concatenated deltas == non-streamed text and tokens: %s' % what)
        if text != r.text:
            diag('stream:     %r\nnon-stream: %r' % (text, r.text))
        ok(ds[-1].finish_reason == r.finish_reason and all(d.finish_reason is None for d in ds[:-1]),
           '  one final delta, same finish_reason (%s)' % r.finish_reason)
        ok(ds[-1].usage and ds[-1].usage.get('completion_tokens') == len(toks) == r.usage['completion_tokens'],
           '  usage.completion_tokens == the tokens received (%d)' % len(toks))
        ok(len(ds) > 2, '  streamed in %d deltas' % len(ds))
        m = ds[-1].metrics or {}
        ok(all(isinstance(m.get(k), (int, float)) and m[k] >= 0 for k in ('queue_ms', 'ttft_ms', 'tpot_ms', 'e2e_ms'))
           and m['ttft_ms'] <= m['e2e_ms'], '  metrics: %s' % m)
    r1 = c.generate(PROMPTS[2], temperature=0.9, seed=5, max_tokens=40)
    r2 = c.generate(PROMPTS[2], temperature=0.9, seed=5, max_tokens=40)
    ok(r1.tokens == r2.tokens, 'the same seed gives the same sample')

    rn = c.generate(PROMPTS[4], temperature=1.0, seed=3, n=3, max_tokens=24, ignore_eos=True)
    ok(len(rn.choices) == 3 and all(len(ch.tokens) == 24 for ch in rn.choices), 'n=3: three choices of 24 tokens')
    texts = ['', '', '']
    for d in c.stream(PROMPTS[4], temperature=1.0, seed=3, n=3, max_tokens=24, ignore_eos=True):
        texts[d.index] += d.text
    ok(texts == [ch.text for ch in rn.choices], 'n=3: each streamed choice == its non-streamed text')

    # ---- max_tokens ----
    for n in (1, 7, 48):
        r = c.generate(PROMPTS[5], temperature=0, max_tokens=n, ignore_eos=True)
        ok(r.finish_reason == 'length' and len(r.tokens) == n and r.usage['completion_tokens'] == n,
           'max_tokens %d: finish_reason length, exactly %d tokens (got %s, %d)' % (
               n, n, r.finish_reason, len(r.tokens)))
        ds, text, toks = stream_all(c, PROMPTS[5], temperature=0, max_tokens=n, ignore_eos=True)
        ok(len(toks) == n and ds[-1].finish_reason == 'length' and text == r.text,
           '  streamed: the same')

    # ---- stop strings ----
    base_kw = dict(temperature=0, max_tokens=96, ignore_eos=True)
    ds, full, base_toks = stream_all(c, PROMPTS[0], **base_kw)
    diag('greedy text: %r' % full)
    starts, pos = [], 0
    for d in ds:
        starts.append(pos)
        pos += len(d.text)

    def check_stop(stops, expect_at, expect_stop, what):
        r = c.generate(PROMPTS[0], stop=stops, **base_kw)
        good = r.finish_reason == 'stop' and r.text == full[:expect_at]
        ok(good, '%s: finish_reason stop, the text cut before it' % what)
        if not good:
            diag('  got finish_reason=%r text=%r\n  expected text=%r' % (r.finish_reason, r.text, full[:expect_at]))
        ok(r.stop_reason == expect_stop, '  stop_reason is the stop string hit, %r (got %r)' % (expect_stop, r.stop_reason))
        sds, stext, stoks = stream_all(c, PROMPTS[0], stop=stops, **base_kw)
        ok(stext == full[:expect_at] and sds[-1].finish_reason == 'stop' and
           all(s not in stext for s in stops), '  streamed: the stop text is never emitted')
        if stext != full[:expect_at]:
            diag('  streamed %r' % stext)
        ok(stoks == base_toks[:len(stoks)] and len(stoks) < len(base_toks), '  its tokens are a prefix of the greedy ones')

    spanning = inside = None
    for k in range(1, len(ds) - 1):
        a, b = ds[k].text, ds[k + 1].text
        if spanning is None and len(a) >= 2 and len(b) >= 2:
            s = a[-2:] + b[:2]
            if full.find(s) == starts[k] + len(a) - 2:
                spanning = (s, starts[k] + len(a) - 2)
        t = ds[k].text.strip()
        if inside is None and len(t) >= 3 and k > 3:
            at = full.find(t)
            if at > starts[k] - 1 and at == starts[k] + ds[k].text.find(t):
                inside = (t, at)
    ok(spanning is not None and inside is not None, 'found stop strings in the greedy text: %r, %r' % (spanning, inside))
    if spanning:
        check_stop([spanning[0]], spanning[1], spanning[0], 'a stop string spanning two tokens %r' % spanning[0])
    if inside:
        check_stop([inside[0]], inside[1], inside[0], 'a stop string inside one delta %r' % inside[0])
    if spanning and inside:
        first, second = sorted([spanning, inside], key=lambda s: s[1])
        check_stop(['zzzq', second[0], first[0]], first[1], first[0], 'several stop strings: the earliest wins')
    r = c.generate(PROMPTS[0], stop=['qqqxz'], **base_kw)
    ok(r.text == full and r.finish_reason == 'length', 'a stop string that never appears changes nothing')

    # stop token ids
    k = next(i for i in range(3, len(base_toks)) if base_toks[i] not in base_toks[:i])
    r = c.generate(PROMPTS[0], stop_token_ids=[base_toks[k]], **base_kw)
    ok(r.finish_reason == 'stop' and r.stop_reason == base_toks[k] and r.tokens == base_toks[:len(r.tokens)]
       and len(r.tokens) in (k, k + 1),
       'stop_token_ids: ends at token %d (%d) with finish_reason stop (got %s, %r, %d tokens)' % (
           k, base_toks[k], r.finish_reason, r.stop_reason, len(r.tokens)))

    # ---- logprobs ----
    r = c.generate(PROMPTS[6], temperature=0, max_tokens=16, logprobs=3, ignore_eos=True)
    ok(r.logprobs is not None and len(r.logprobs) == 16 and all(x <= 1e-6 and math.isfinite(x) for x in r.logprobs),
       'logprobs: one finite logprob <= 0 per token')
    ok(r.top_logprobs is not None and all(len(t) == 3 for t in r.top_logprobs)
       and all(t[0][0] == tok for t, tok in zip(r.top_logprobs, r.tokens)),
       'top_logprobs: 3 per token, the greedy token first')
    ok(r.top_logprobs is not None and all(abs(t[0][1] - lp) < 1e-4 for t, lp in zip(r.top_logprobs, r.logprobs)),
       'the greedy token\'s logprob is its top logprob')

    # logprobs are computed only for steps where some request asked: batched beside requests
    # that did not ask, a request gets the logprobs it gets alone, and the others get none
    alone = c.generate(PROMPTS[7], temperature=0, max_tokens=24, logprobs=0, ignore_eos=True)

    async def mixed():
        async with AsyncClient(srv.endpoint, timeout=120) as ac:
            return await asyncio.gather(
                ac.generate(PROMPTS[8], temperature=0, max_tokens=40, ignore_eos=True),
                ac.generate(PROMPTS[7], temperature=0, max_tokens=24, logprobs=0,
                            ignore_eos=True),
                ac.generate(PROMPTS[9], temperature=0, max_tokens=8, ignore_eos=True))
    before, with_lp, after = asyncio.run(mixed())
    ok(with_lp.tokens == alone.tokens and with_lp.logprobs is not None
       and len(with_lp.logprobs) == 24
       and all(abs(a - b) < 1e-5 for a, b in zip(with_lp.logprobs, alone.logprobs)),
       'logprobs: batched beside requests without them, the same logprobs as alone')
    ok(before.logprobs is None and after.logprobs is None,
       'requests that did not ask get no logprobs (%r, %r)'
       % (before.logprobs and before.logprobs[:2], after.logprobs and after.logprobs[:2]))
    c.close()

done_testing()
