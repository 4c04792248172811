/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * a * b / c in 64-bit arithmetic (BPF has no wider multiply), shared by the CPU program and a
 * native test of it (test/bpf/mulDiv.test.ts).
 */
#ifndef OFFLOADCAGE_MUL_DIV_H
#define OFFLOADCAGE_MUL_DIV_H

#include <linux/types.h>

/*
 * a * b / c for b <= c (the share b/c of a); 0 when c is 0. Exact (rounded down) while c < 2^32
 * (4.3 s in ns). Above, b and c drop the same low bits until c is under 2^32, which keeps b/c
 * to within 2^-30, so the result is within a * 2^-30 + 2 of exact (7 ns for a = 5 s). a may
 * be of any size: it is split in halves so that no product overflows.
 */
static inline __attribute__((always_inline)) __u64 mul_div(__u64 a, __u64 b, __u64 c)
{
	if (c >> 48) {
		b >>= 16;
		c >>= 16;
	}
	if (c >> 40) {
		b >>= 8;
		c >>= 8;
	}
	if (c >> 36) {
		b >>= 4;
		c >>= 4;
	}
	if (c >> 34) {
		b >>= 2;
		c >>= 2;
	}
	if (c >> 32) {
		b >>= 1;
		c >>= 1;
	}
	if (c >> 32) {
		b >>= 1;
		c >>= 1;
	}
	if (c == 0)
		return 0;
	/*
	 * b < 2^32 and c < 2^32 now, so every product and sum below fits in 64 bits:
	 * a * b = hi * 2^32 + lo, and the remainders of the three divisions are added up last.
	 */
	__u64 hi = (a >> 32) * b, lo = (a & 0xffffffffULL) * b, mid = (hi % c) << 32;

	return ((hi / c) << 32) + mid / c + lo / c + (mid % c + lo % c) / c;
}

#endif
