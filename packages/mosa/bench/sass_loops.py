# Per kernel with mma: the innermost loops holding HMMA (backward branch to an earlier address), instruction mix.
import re, sys
def funcs(path):
    cur = None; out = {}
    for line in open(path):
        m = re.search(r'Function : (\S+)', line)
        if m:
            cur = m.group(1); out[cur] = []; continue
        m = re.match(r'\s+/\*([0-9a-f]{4,})\*/\s+(.*?);', line)
        if m and cur:
            out[cur].append((int(m.group(1), 16), m.group(2)))
    return out
pats = [('HMMA', r'HMMA'), ('LDS', r'\bLDS'), ('STS', r'\bSTS'), ('cvt', r'F2FP|F2F|FRND'), ('FADD', r'\bFADD'),
        ('int', r'\b(IMAD|IADD3|LEA|LOP3|SHF|ISETP|SEL|IABS|MOV)\b'), ('LDG', r'LDG'), ('local', r'STL|LDL'), ('BAR', r'BAR')]
for path in sys.argv[1:]:
    F = funcs(path)
    for name in sorted(F):
        ins = F[name]
        if not any('HMMA' in i for _, i in ins):
            continue
        idx = {a: k for k, (a, _) in enumerate(ins)}
        loops = []
        for k, (a, i) in enumerate(ins):
            m = re.search(r'BRA\s.*?(0x[0-9a-f]+)', i)
            if m:
                tgt = int(m.group(1), 16)
                if tgt < a and tgt in idx:
                    body = [x for _, x in ins[idx[tgt]:k + 1]]
                    if any('HMMA' in x for x in body):
                        loops.append(body)
        loops.sort(key=len)
        tot = 'all %d' % len(ins)
        for body in loops[:3]:
            cnt = ', '.join('%s %d' % (n, sum(1 for x in body if re.search(p, x))) for n, p in pats)
            print('%s %s: %s; loop %d instr: %s' % (path, name, tot, len(body), cnt))
