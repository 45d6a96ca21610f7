/* unordered_map.cc: a std::unordered_map of accounts keyed by std::string, grown one insert at a
 * time or reserve()d first (--presize). It counts its own allocations and prints them as one JSON
 * line; it must never allocate outside the counters of example.h.
 *
 * Usage: unordered_map [ITEMS] [--presize]      (ITEMS defaults to 10000)
 *
 * How libstdc++ (GCC 12) grows an unordered_map (bits/hashtable.h, hashtable_policy.h,
 * src/c++11/hashtable_c++0x.cc):
 *
 * - A node-based table: each element is one node allocation (the key/value pair, a next pointer
 *   and the cached hash code), and the buckets are one array of pointers. An empty map uses a
 *   single built-in bucket and allocates nothing.
 * - Before an insert, _Prime_rehash_policy::_M_need_rehash checks whether size + 1 would exceed
 *   max_load_factor (1.0) * bucket_count. If so, _M_rehash allocates a new bucket array of the next
 *   prime at or above twice the old count (the first one at 13 buckets), relinks every node and
 *   frees the old array. For 10,000 items that is 13, 29, 59, 127, 257, 541, 1109, 2357, 5087 and
 *   10273 buckets: ten bucket arrays, the last nine allocated only because the map grew, all from
 *   _Hashtable::_M_rehash under the insert.
 * - reserve(n) is rehash(ceil(n / max_load_factor)): one bucket array of the first prime at or
 *   above n (10,273 for 10,000), allocated before the first insert, after which no insert
 *   rehashes. The nodes are allocated one by one either way, so reserve saves the bucket arrays,
 *   not the nodes.
 *
 * Keys of 12 characters fit std::string's 15-byte inline buffer, so they allocate nothing of
 * their own: the allocations are nodes and bucket arrays only, and the map's allocator counts
 * them all. */
#include <cstdint>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "example.h"

namespace
{

/* std::allocator plus counting: the map allocates nodes and bucket arrays through it, and both
 * still end in ::operator new, so the profile sees the same calls as with std::allocator. */
struct table_tally {
	struct ex_tally nodes;
	struct ex_tally buckets;
};
table_tally tally;

template <typename T> struct counting_allocator {
	using value_type = T;
	counting_allocator() = default;
	template <typename U> counting_allocator(const counting_allocator<U> &)
	{
	}

	T *allocate(std::size_t n)
	{
		std::size_t bytes = n * sizeof(T);
		ex_count_alloc(bytes);
		/* libstdc++ allocates its bucket array as an array of node-base pointers. */
		struct ex_tally &t = std::is_pointer<T>::value ? tally.buckets : tally.nodes;
		t.objects++;
		t.bytes += bytes;
		return static_cast<T *>(::operator new(bytes));
	}
	void deallocate(T *p, std::size_t n)
	{
		ex_count_free(n * sizeof(T));
		::operator delete(p);
	}
	template <typename U> bool operator==(const counting_allocator<U> &) const
	{
		return true;
	}
	template <typename U> bool operator!=(const counting_allocator<U> &) const
	{
		return false;
	}
};

struct account {
	std::uint64_t id;
	double balance;
	unsigned visits;
	char country[4];
};

using account_map =
    std::unordered_map<std::string, account, std::hash<std::string>, std::equal_to<std::string>,
                       counting_allocator<std::pair<const std::string, account>>>;

const char *const countries[] = {"de", "fr", "us", "jp", "br", "in", "ng"};

std::string key_of(unsigned long i)
{
	char key[32];
	snprintf(key, sizeof(key), "user:%07lu", i);
	return key;
}

/* Fills the map and reads it back. Every counted allocation happens under this function (the
 * "scope" of the JSON line). */
__attribute__((noinline)) double build_map(account_map &map, unsigned long items, bool presize)
{
	if (presize)
		map.reserve(items);
	for (unsigned long i = 0; i < items; i++) {
		account a{1000003u * i + 17,
		          static_cast<double>(i % 9973) * 1.25,
		          static_cast<unsigned>(i % 31),
		          {0, 0, 0, 0}};
		memcpy(a.country, countries[i % 7], 3);
		std::size_t before = map.bucket_count();
		map.emplace(key_of(i), a);
		std::size_t after = map.bucket_count();
		/* The first bucket array replaces the built-in single bucket; later ones are
		 * growth. */
		if (after != before && before > 1)
			ex_count_growth(after * sizeof(void *));
	}
	double sum = 0;
	for (unsigned long i = 0; i < items; i += 3) {
		auto it = map.find(key_of(i));
		if (it == map.end() || it->second.id != 1000003u * i + 17) {
			fprintf(stderr, "unordered_map: lost %s\n", key_of(i).c_str());
			exit(1);
		}
		sum += it->second.balance;
	}
	return sum;
}

} // namespace

int main(int argc, char **argv)
{
	unsigned long items;
	int presize;
	ex_args(argc, argv, &items, &presize);

	std::size_t buckets;
	double sum;
	{
		account_map map;
		sum = build_map(map, items, presize);
		buckets = map.bucket_count();
	}

	char extra[256];
	snprintf(extra, sizeof(extra),
	         ",\"final_buckets\":%zu,\"nodes\":{\"objects\":%llu,\"bytes\":%llu}"
	         ",\"buckets\":{\"objects\":%llu,\"bytes\":%llu},\"checksum\":%.2f",
	         buckets, tally.nodes.objects, tally.nodes.bytes, tally.buckets.objects,
	         tally.buckets.bytes, sum);
	ex_print("unordered_map", "build_map", items, presize, extra);
	return 0;
}
