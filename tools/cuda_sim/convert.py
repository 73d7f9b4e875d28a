# Rewrites a kernel source for the CPU simulation (cuda_runtime.h, sim_fiber.cpp):
#  * kernel<<<grid, block[, smem[, stream]]>>>(args);
#      -> sim_launch(dim3(grid), dim3(block), (smem), "kernel", stream,
#                    [](auto... a) { kernel(a...); }, args);
#    (the arguments are evaluated and copied at the launch, so a captured launch
#    replays with the values it had);
#  * __shared__ T name[...];  ->  the same, followed by SIM_SHARED_TOUCH(name); which
#    poisons the array (0xA5 bytes) before each block uses it;
#  * extern __shared__ (dynamic shared memory) is refused: the simulator lacks it.
# Lines are kept and a #line names the original file, so compiler errors and the
# simulator's __syncthreads sites point at the kernel source.
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
if os.path.realpath(dst) == os.path.realpath(src):
    sys.exit('cuda_sim/convert.py: refusing to overwrite the source %s' % src)
s = open(src).read()

def fail(line, msg):
    sys.stderr.write('%s:%d: cuda_sim/convert.py: %s\n' % (src, line, msg))
    sys.exit(1)

def line_of(text, pos):
    return text.count('\n', 0, pos) + 1

def split_top(a):
    parts, depth, cur = [], 0, ''
    for ch in a:
        if ch in '([{': depth += 1
        if ch in ')]}': depth -= 1
        if ch == ',' and depth == 0: parts.append(cur.strip()); cur = ''
        else: cur += ch
    parts.append(cur.strip()); return parts

# Comments blanked (same length, newlines kept): only code is looked at.
code = re.sub(r'//[^\n]*|/\*.*?\*/', lambda c: re.sub(r'[^\n]', ' ', c.group(0)), s, flags=re.S)
m = re.search(r'\bextern\s+__shared__\b', code)
if m:
    fail(line_of(code, m.start()), 'extern __shared__ (dynamic shared memory) is not supported by the simulator')

# Static shared declarations: one per statement, each starting its line.
shared_decl = re.compile(r'^([ \t]*)(__shared__\b[^;{}]*;)', re.M)
def shared_name(m):
    decl = m.group(2)
    body = decl[len('__shared__'):-1].strip()
    if '=' in body or len(split_top(body)) != 1:
        fail(line_of(code, m.start()), 'declare one __shared__ variable per statement, without initialiser: ' + decl)
    name = re.match(r'^(.*?)\b([A-Za-z_]\w*)\s*((?:\[[^\]]*\]\s*)*)$', body, re.S)
    if not name:
        fail(line_of(code, m.start()), 'cannot parse the __shared__ declaration: ' + decl)
    return name.group(2)
decls = list(shared_decl.finditer(code))
decl_lines = {line_of(code, d.start()) for d in decls}
for m in re.finditer(r'\b__shared__\b', code):
    if line_of(code, m.start()) not in decl_lines:
        fail(line_of(code, m.start()), '__shared__ must start its line, one declaration per statement')
for d in reversed(decls):  # code and s share offsets
    s = s[:d.end()] + ' SIM_SHARED_TOUCH(%s);' % shared_name(d) + s[d.end():]

launch = re.compile(r'([A-Za-z_][\w:]*(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)
def rep_launch(m):
    name, cfg, args = m.group(1), split_top(m.group(2)), m.group(3)
    smem = cfg[2] if len(cfg) > 2 and cfg[2] else '0'
    stream = cfg[3] if len(cfg) > 3 and cfg[3] else 'nullptr'
    tail = ', ' + args if args.strip() else ''
    return 'sim_launch(dim3(%s), dim3(%s), (%s), "%s", (%s), [](auto... a) { %s(a...); }%s);' % (
        cfg[0], cfg[1], smem, name, stream, name, tail)
s, n = launch.subn(rep_launch, s)
open(dst, 'w').write('#line 1 "%s"\n' % os.path.abspath(src).replace('\\', '/') + s)
print(src, n, 'launches,', len(decls), '__shared__ declarations')
