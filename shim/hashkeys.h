/* hashkeys.h: one random odd 64-bit multiplier per position of a chain key
 * (up to MP_MAX_DEPTH frames, the skipped room and the flags word), for
 * hash_ips in table.c. Generated once with splitmix64 from a fixed seed; any
 * fixed odd values work. Independent random multipliers leave no linear
 * relation between positions (an arithmetic progression made reordered
 * recursive chains such as x,y,y,x and y,x,x,y collide). */
#ifndef MAPPROF_HASHKEYS_H
#define MAPPROF_HASHKEYS_H

#include <stdint.h>

#define MP_HASHKEYS 266

static const uint64_t mp_hashkeys[MP_HASHKEYS] = {
    0xd1d821ad3a6c7de9ull, 0x66ce5425638d6b59ull, 0xbe2bf99f95aa0db1ull, 0xaeaf5c28cd703f1full,
    0x257a1ecf48ae6ce5ull, 0x1535605d667a3567ull, 0x32920732b016cd4full, 0x0aab3f42408dfecfull,
    0x3d2beee82dd0d9b9ull, 0x2173c90a47cd3e7full, 0x0c7af76386f12b13ull, 0x33c3fe6a6832f62bull,
    0xd9c85afdbaf9e02bull, 0x9c436010c12ed21full, 0x795ccaeb941e5e91ull, 0x76ec1eac733b961full,
    0x3af1ff63516b1535ull, 0xa52aa877c32075e7ull, 0xde322b435564b073ull, 0x519e94222fab1ef3ull,
    0xf46b54989d87029full, 0xb78336c8ff0eb93bull, 0x89697b6be42940a5ull, 0xa5115a86290a11efull,
    0x4f8b980972ef7b67ull, 0x06dae7248f9af1adull, 0x14ec0186810f0b49ull, 0xb7b52c35c9a24145ull,
    0xbb20183d077cc883ull, 0xc709a49cfb53915full, 0x4e498b34a87c7817ull, 0xa9f56cb09fb16d5full,
    0x8cd95588378d2337ull, 0xb223be1e386af753ull, 0x2429f0885393a61bull, 0xf36f9691dfbcbe5full,
    0xafde7ae4cce49839ull, 0x02561b765e95c065ull, 0xcc54cafbe234a5abull, 0xda145ac40445bb75ull,
    0xce599dfd1c003eafull, 0x6c3ccb294e856e53ull, 0xf3f5f907f6f5bb03ull, 0x01f47562a1d48b23ull,
    0x6d021b04ac75f3efull, 0xb4e8aaa9dc248f81ull, 0x511bda115d55b7b9ull, 0x7b40fd9085620c63ull,
    0x88017b44f66c1dbbull, 0x0b49a09fd8adc54full, 0xd7663b6e4e4735e9ull, 0x27c94e8c7c41f07bull,
    0x97fe2aa5e55b40ffull, 0xa6043dd275811b59ull, 0xd3a55ba1b088009bull, 0x8755ac3beb313119ull,
    0xf641beb4a07738e3ull, 0x29babf8530605d71ull, 0x741c4918f03ed4b1ull, 0x3ee5f23b8147bc71ull,
    0xedf2d2054199f065ull, 0x4606078dbf8bc259ull, 0x5439f64cfd75b5f7ull, 0x385ab54fa1b65619ull,
    0x43bf5a4586697175ull, 0x207b4dbaeb1439a7ull, 0x8ee672d4425dab53ull, 0x9dbaf313b40c8acbull,
    0x5bf537d7317193dfull, 0x04e9658de6db6ba5ull, 0xf45c64f5d7a2de77ull, 0x070f8550b0a245b3ull,
    0xd080025e5f9a7709ull, 0x8b714c587d80e871ull, 0xc8aca718d52aadebull, 0xf070abd1a5e082ffull,
    0x82aa9c3e2b8e214full, 0x94fa0820687cca65ull, 0xb9c9800c85d80c31ull, 0x1ac39984c0e18c95ull,
    0x926f9ba667f9b175ull, 0xd9cfb87c5765f179ull, 0xb21434c77b06c92dull, 0x96b5ffafd0f0e3b5ull,
    0xf8b396e07231ba01ull, 0x8a7bfeb5b2a669bbull, 0xc3ada3fa843b12f7ull, 0x4b029e02c249473full,
    0x7e6198e997d27a73ull, 0x81f55b3a80c6036full, 0xe2a89dd20bf07585ull, 0x29417365a41e93a5ull,
    0x1d6794043d606e19ull, 0x92a38f5ef544aa13ull, 0xc66ea2c04ffae50dull, 0x7176b45d587891c5ull,
    0xd52ab6b4e7d8e459ull, 0x44eb7bedac26ae65ull, 0xbe1495d508f128f5ull, 0x1c89013b6fee75adull,
    0x01a4d6b43b04f15dull, 0xb090377515bfba7dull, 0x533a152962183d1full, 0xddfc93cf763d708full,
    0xe505a00012c54693ull, 0x5948816bd6b68299ull, 0x25360c96afbe8ed5ull, 0x3d43f6a636ca8899ull,
    0xb05982ada4f43e4dull, 0xb42e2145b59bc5b1ull, 0x02feeb608cf89371ull, 0x3a1ff346251d1f0full,
    0x8799ae31e85f03edull, 0x23f02d39250784b7ull, 0x30e0d09b1c5d11ddull, 0x30946636a9a98871ull,
    0x393c8319a527aba1ull, 0xbb2cc769bb1b366full, 0xa731ff84aefdb9c7ull, 0xe2268b3a6a93e7e7ull,
    0x1666dbbee20b2bd5ull, 0x2084406b197176c5ull, 0x090cd773352bf561ull, 0x3d5fa004d9613c65ull,
    0x3c574d5a99af5b59ull, 0x3a0188cda40a442full, 0x108db5d8fbf6aa45ull, 0x8ba4408e160f112full,
    0x7ea7c520318748cbull, 0xeeff1a9aa585cdadull, 0xfe155fbee9a50d5dull, 0x2011db4db07f4d21ull,
    0xf744701f0e68f1e9ull, 0x2af891643edf25d3ull, 0x7ead1fb2c6541247ull, 0x9927383b59d944afull,
    0x127c9283a94dd3afull, 0x148fd1856f20e3cfull, 0x6a4d61284660a959ull, 0x1b9770c31f9f0587ull,
    0xf45c230b2c3d3893ull, 0x54480f626794e1dbull, 0x8fc617390a4d15c3ull, 0x9198b37eb858f5dfull,
    0x84bea65f6da40ee5ull, 0xcbd91b17f6fffa67ull, 0x6a77d251145fbd3bull, 0x1a3c838be55b014bull,
    0xabab476dbb6e0e6dull, 0x206302b3cd3720bfull, 0x63b2833f19c65e2full, 0x85791d0b776b9c61ull,
    0x2ec4dc2cd0a49e25ull, 0xcb8af653e63c603full, 0xa748084b7feafe13ull, 0x25bcfd750e7f0cc1ull,
    0xe7dda5af5e9118fdull, 0xc20f5b2863a23133ull, 0x5dabb27a168b47d7ull, 0x6ac6f1a1df52eeabull,
    0x33050ddbc7769ab1ull, 0xaf0473699d253647ull, 0x8f10b44f98fae411ull, 0xbb0afba9588c4681ull,
    0xb582ad1d9b56455bull, 0x71a3b77095cd4571ull, 0x8b9eee4431fbd44full, 0xfd23af32f229e883ull,
    0x2b1a86949670efd5ull, 0x8a4547af04c18363ull, 0xa82336f6e06921cfull, 0x4cc5589a935a7edfull,
    0x907a8d67f21df793ull, 0x257f9f5d2db6f647ull, 0x479afd3b449121dfull, 0xb770b11fe22cee91ull,
    0x0c282a658ee9e05bull, 0xcebbac7f8e1b23adull, 0x021b88a7015b95b5ull, 0x247913e387a182dbull,
    0xf34389dab9309079ull, 0x548ecbfb071952b9ull, 0xef8b7702611dbab3ull, 0xfc01f38dcae625c7ull,
    0x3f2324ae92e76289ull, 0xeb5aa533b646f1d1ull, 0x3344dc97a93576bfull, 0xbf50ff9a0eb73609ull,
    0x70763036f5bd3dd3ull, 0x955f69b50d745f47ull, 0xaf42d8c619b0dd9full, 0xc63cf81fd9748de1ull,
    0xb4a01205686424afull, 0x540f420c4fb54ea7ull, 0xc468fdc2acc584e3ull, 0x530868c3059370e5ull,
    0x504ec21693b30421ull, 0x46944506047f218full, 0xce9b6947618eeb4bull, 0x5addc3367163b10full,
    0xe7d91f5238a92ce5ull, 0x63e6c13b69b56a57ull, 0x753474eec20fde09ull, 0xff84e1f0ed40f687ull,
    0x37715600ba24c603ull, 0x878c4b1d86cd60a1ull, 0x31b3324a7922fedfull, 0x9437d7cb661f96dfull,
    0x32545d9ae68e3245ull, 0x4638eaf9e3bfcc2dull, 0xb0f4f9e26d600addull, 0xa65cd37d13b8070full,
    0xce97ac464fac4a39ull, 0xccd47915886e7b65ull, 0x8856505fc4157b75ull, 0x981ce87114fa0773ull,
    0x71cf8d1a5b495511ull, 0x990059cabf02bef1ull, 0xe8bb8f37e7fdbcbfull, 0x7910da92ac12a07dull,
    0xe0be5a579cdf74e7ull, 0xdc5c0f388a7ee295ull, 0xe5ff5d3bbc436087ull, 0x0f4dc8c452cb5a8bull,
    0x904e7dd234644793ull, 0x9cb43ac294b5930dull, 0x984b3462808b0bb5ull, 0x6d9ff76ac7722567ull,
    0x88f913bf59165c07ull, 0x112d0e249e6672e7ull, 0xee601799679305e5ull, 0xb5f6f5fa986541e7ull,
    0x0b62c1f4353ba507ull, 0x539c74c676377af9ull, 0x61ded62d1789f509ull, 0xbabe96a208c3aaf3ull,
    0x8d126a2a70ec3da9ull, 0xb1de44e11429bbd9ull, 0x0c5d7fca5c6a77e5ull, 0x24fd48308f5da321ull,
    0x079c4c78aeaf1bb5ull, 0x15bf682ce0fe9de5ull, 0x845937bec35ce769ull, 0x654d5d2ca4399523ull,
    0x31bb354d6d016fa1ull, 0x2d9b000f599e7d69ull, 0x39d0c5e07c3ac195ull, 0x30d6c519d38d6561ull,
    0xb68a281d0681be49ull, 0x44343ba41a07a74full, 0xbd353bd350113dffull, 0xb3412e1fc0d499fdull,
    0xad1ae7ab191b334dull, 0xe9b19a9c97f12711ull, 0x99c85fa4c4028947ull, 0x1b809e91d771c1f3ull,
    0xb638d6d70e1a1723ull, 0xae801fd990619251ull, 0x6fec12002a027d5dull, 0xa698225fe54dbed9ull,
    0xd065c32c2463b051ull, 0x041f57f3fa84c1e1ull, 0x87e043cdac29ffb5ull, 0xb9cc1af15d8ef4cfull,
    0x05b0d3cd2ff017ddull, 0xf832990e6716d0c3ull,
};

/* A chain key's hash, summed a position at a time (see hash_ips in table.c
 * for why), so a frame-pointer walk can hash while it waits on its loads. */
struct mp_hash {
	uint64_t h;
};

static inline void mp_hash_add(struct mp_hash *s, uintptr_t ip, uint32_t i)
{
	s->h += (uint64_t)ip * mp_hashkeys[i];
}

/* The hash of a key of n words whose words were all added. */
static inline uint64_t mp_hash_final(struct mp_hash s, uint32_t n)
{
	uint64_t h = s.h + n;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 29;
	return h;
}

#endif
