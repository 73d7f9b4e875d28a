import re, sys, os
src, dst = sys.argv[1], sys.argv[2]
s = open(src).read()
def split_top(a):
    parts, depth, cur = [], 0, ''
    for ch in a:
        if ch in '([{': depth += 1
        if ch in ')]}': depth -= 1
        if ch == ',' and depth == 0: parts.append(cur.strip()); cur = ''
        else: cur += ch
    parts.append(cur.strip()); return parts
out = ''; i = 0
pat = re.compile(r'([A-Za-z_][\w:]*(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)
def rep(m):
    name, cfg, args = m.group(1), split_top(m.group(2)), m.group(3)
    return 'sim_launch(dim3(%s), dim3(%s), [&] { %s(%s); });' % (cfg[0], cfg[1], name, args)
s2, n = pat.subn(rep, s)
open(dst, 'w').write(s2)
print(src, n, 'launches')
