import struct, sys, collections
data = open(sys.argv[1],'rb').read()
magic = struct.unpack('<I', data[:4])[0]
assert magic == 0xa1b2c3d4, hex(magic)
off = 24
streams = collections.OrderedDict()
while off + 16 <= len(data):
    ts, tu, incl, orig = struct.unpack('<IIII', data[off:off+16]); off += 16
    pkt = data[off:off+incl]; off += incl
    if struct.unpack('>H', pkt[12:14])[0] != 0x0800: continue
    ip = pkt[14:]; ihl = (ip[0] & 15) * 4
    if ip[9] != 6: continue
    tcp = ip[ihl:]; sport, dport, seq = struct.unpack('>HHI', tcp[:8]); doff = (tcp[12] >> 4) * 4
    payload = tcp[doff:]
    if not payload: continue
    s = streams.setdefault((sport, dport), {})
    s.setdefault(seq, payload)
out = {}
for k, segs in streams.items():
    out[k] = b''.join(segs[q] for q in sorted(segs))

# crc32c raw (no inversion), seed 0
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
def crc(seed, b):
    c = seed
    for x in b: c = T[(c ^ x) & 0xff] ^ (c >> 8)
    return c

msgs = []
for (sp, dp), st in out.items():
    i = 0
    while i < len(st) - 54:
        if st[i] == 7:
            h = st[i+1:i+54]
            if crc(0, h[:49]) == struct.unpack('<I', h[49:53])[0]:
                seq, tid, typ, prio, ver, fl, ml, dl = struct.unpack('<QQHHHIII', h[:34])
                front = st[i+54:i+54+fl]
                msgs.append((sp, dp, seq, typ, front))
                i += 54 + fl + ml + dl + 21
                continue
        i += 1
for sp, dp, seq, typ, front in msgs:
    print(sp, dp, seq, typ, len(front))
    if typ in (17, 18):
        open(f'/tmp/pcapx/{sp}-{dp}-{seq}-{typ}.bin','wb').write(front)
