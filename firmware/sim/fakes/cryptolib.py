"""A pure-Python stand-in for MicroPython's `cryptolib`: AES-128 in ECB mode (mode 1), encrypt
only, which is all BTHome's AES-CCM needs. FIPS-197, checked against its appendix C.1 vector."""


def _xtime(a):
    a <<= 1
    return (a ^ 0x11B) if a & 0x100 else a


def _sbox():
    box = [0] * 256
    p = q = 1
    while True:
        p = p ^ _xtime(p) & 0xFF  # multiply by 3
        p &= 0xFF
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q ^ (q << 1 | q >> 7) ^ (q << 2 | q >> 6) ^ (q << 3 | q >> 5) ^ (q << 4 | q >> 4)
        box[p] = (x ^ 0x63) & 0xFF
        if p == 1:
            break
    box[0] = 0x63
    return box


SBOX = _sbox()


def _expand(key):
    w = list(key)
    rcon = 1
    for i in range(16, 176, 4):
        t = w[i - 4 : i]
        if i % 16 == 0:
            t = [SBOX[t[1]] ^ rcon, SBOX[t[2]], SBOX[t[3]], SBOX[t[0]]]
            rcon = _xtime(rcon) & 0xFF
        w.extend(w[i - 16 + j] ^ t[j] for j in range(4))
    return w


class aes:
    def __init__(self, key, mode, iv=None):
        if mode != 1 or len(key) != 16:
            raise ValueError("this stand-in does AES-128 ECB only")
        self._w = _expand(bytes(key))

    def encrypt(self, block, out=None):
        if len(block) % 16:
            raise ValueError("ECB needs whole 16-byte blocks")
        res = bytearray()
        for k in range(0, len(block), 16):
            res.extend(self._block(block[k : k + 16]))
        return bytes(res)

    def _block(self, block):
        w = self._w
        s = [block[i] ^ w[i] for i in range(16)]
        for rnd in range(1, 11):
            s = [SBOX[b] for b in s]
            s = [s[(i + 4 * (i % 4)) % 16] for i in range(16)]  # ShiftRows, column-major
            if rnd != 10:
                t = []
                for c in range(4):
                    a = s[4 * c : 4 * c + 4]
                    x = a[0] ^ a[1] ^ a[2] ^ a[3]
                    t.extend((a[i] ^ x ^ (_xtime(a[i] ^ a[(i + 1) % 4]) & 0xFF)) for i in range(4))
                s = t
            s = [s[i] ^ w[16 * rnd + i] for i in range(16)]
        return bytes(s)
