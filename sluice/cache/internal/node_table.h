// NodeTable: the storage shared by the sluice caches. A slab of nodes (key, value, stored hash,
// byte charge, two list links and a policy-specific `Meta`) indexed by a Boost flat hash set
// of 32-bit node indices, plus index-linked doubly linked lists over the nodes (their links
// kept in a compact array of their own).
//
// Thread-safety: NOT thread-safe. Not copyable or movable: the set's hasher points at the
// table, so owners hold it in a `std::unique_ptr`.
// Cost: a lookup hashes the key once (the caller does, and passes the hash in) and probes the
// flat set (SIMD group match, usually one cache line) then compares against the node's key.
// Nodes live in chunks that double in size and never move, so a `V*` stays valid until its
// entry is removed; a freed node goes on a free list and is reused. Nothing allocates on a
// lookup or on moving a node between lists.
#pragma once

#include <bit>
#include <boost/unordered/unordered_flat_set.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/base/check.h"

namespace sluice::cache::internal {

inline constexpr uint32_t kNil = UINT32_MAX;
// The largest number of nodes a table can hold (indices are 32-bit; kNil is reserved).
inline constexpr size_t kMaxNodes = size_t{1} << 31;

// True when `Hash` and `Eq` both accept keys other than `K` (heterogeneous lookup).
template <class Hash, class Eq>
inline constexpr bool kTransparent = requires {
  typename Hash::is_transparent;
}
&&requires { typename Eq::is_transparent; };

// Returns `q` itself when the functors are transparent (or `q` is a `K`), else a `K` built
// from it (a temporary; allocation is then the caller's choice of types).
template <class K, class Hash, class Eq, class Q>
decltype(auto) lookup_key(const Q& q) {
  if constexpr (std::is_same_v<Q, K> || kTransparent<Hash, Eq>) {
    return (q);
  } else {
    return K(q);
  }
}

// A doubly linked list of node indices: `head` is the most recently used end.
struct List {
  uint32_t head = kNil;
  uint32_t tail = kNil;
  size_t size = 0;
};

struct NoMeta {};

// The links of one node: toward the head and the tail of its list (`next` is also the
// free-list link).
struct Link {
  uint32_t prev = kNil;
  uint32_t next = kNil;
};

template <class K, class V, class Hash, class Eq, class Meta = NoMeta>
class NodeTable {
 public:
  struct Node {
    size_t hash;   // the user hash of `key()`
    size_t bytes;  // the byte charge given to put
    Meta meta;     // policy state (expiry, segment)
    alignas(K) unsigned char key_buf[sizeof(K)];
    alignas(V) unsigned char value_buf[sizeof(V)];

    K& key() noexcept { return *std::launder(reinterpret_cast<K*>(key_buf)); }
    const K& key() const noexcept { return *std::launder(reinterpret_cast<const K*>(key_buf)); }
    V& value() noexcept { return *std::launder(reinterpret_cast<V*>(value_buf)); }
  };

  explicit NodeTable(Hash hash = Hash(), Eq eq = Eq())
      : hash_(std::move(hash)), eq_(std::move(eq)), set_(0, SetHash{this}, SetEq{this}) {}
  NodeTable(const NodeTable&) = delete;
  NodeTable& operator=(const NodeTable&) = delete;
  ~NodeTable() { clear(); }

  // The user hash of `key`. `Q` is `K`, or any type the user's transparent Hash accepts (callers
  // convert other types with `lookup_key` first).
  template <class Q>
  [[nodiscard]] size_t hash_of(const Q& key) const {
    return hash_(key);
  }

  // The index of the node holding `key` (whose user hash is `hash`), or kNil.
  template <class Q>
  [[nodiscard]] uint32_t find(const Q& key, size_t hash) const {
    const auto it = set_.find(Probe<Q>{&key, hash});
    return it == set_.end() ? kNil : it->index;
  }

  // Adds a node for a key known to be absent; returns its index. The node is on no list.
  // Strong guarantee: if an allocation or a constructor throws, the table is unchanged.
  uint32_t insert(K&& key, V&& value, size_t hash, size_t bytes) {
    const uint32_t index = allocate_node();
    Node& n = node(index);
    try {
      std::construct_at(reinterpret_cast<K*>(n.key_buf), std::move(key));
    } catch (...) {
      release_node(index);
      throw;
    }
    try {
      std::construct_at(reinterpret_cast<V*>(n.value_buf), std::move(value));
    } catch (...) {
      std::destroy_at(&n.key());
      release_node(index);
      throw;
    }
    n.hash = hash;
    n.bytes = bytes;
    links_[index] = Link{};
    n.meta = Meta{};
    try {
      set_.insert(Slot{index});
    } catch (...) {
      destroy(n);
      release_node(index);
      throw;
    }
    return index;
  }

  // Removes the node (which the caller has already unlinked from its list).
  void remove(uint32_t index) noexcept {
    set_.erase(Slot{index});
    destroy(node(index));
    release_node(index);
  }

  // Removes every node. The chunks are kept for reuse.
  void clear() noexcept {
    for (const Slot s : set_) {
      destroy(node(s.index));
      release_node(s.index);
    }
    set_.clear();
  }

  [[nodiscard]] size_t size() const noexcept { return set_.size(); }

  // The neighbours of a node on its list (kNil at the ends).
  [[nodiscard]] uint32_t next_of(uint32_t index) const noexcept { return links_[index].next; }
  [[nodiscard]] uint32_t prev_of(uint32_t index) const noexcept { return links_[index].prev; }

  [[nodiscard]] Node& node(uint32_t index) noexcept {
    const uint64_t j = uint64_t{index} + kFirstChunk;
    const int chunk = std::bit_width(j) - 1 - kFirstChunkLog;
    return chunks_[chunk][j - (kFirstChunk << chunk)];
  }
  [[nodiscard]] const Node& node(uint32_t index) const noexcept {
    return const_cast<NodeTable*>(this)->node(index);
  }

  // List helpers; `head` is the most recently used end.
  void push_front(List& list, uint32_t index) noexcept {
    Link& n = links_[index];
    n.prev = kNil;
    n.next = list.head;
    if (list.head != kNil) {
      links_[list.head].prev = index;
    } else {
      list.tail = index;
    }
    list.head = index;
    ++list.size;
  }
  void unlink(List& list, uint32_t index) noexcept {
    Link& n = links_[index];
    if (n.prev != kNil) {
      links_[n.prev].next = n.next;
    } else {
      list.head = n.next;
    }
    if (n.next != kNil) {
      links_[n.next].prev = n.prev;
    } else {
      list.tail = n.prev;
    }
    n.prev = n.next = kNil;
    --list.size;
  }
  void move_to_front(List& list, uint32_t index) noexcept {
    if (list.head == index) return;
    unlink(list, index);
    push_front(list, index);
  }

 private:
  static constexpr uint64_t kFirstChunk = 16;  // nodes in chunk 0; chunk c holds 16 << c
  static constexpr int kFirstChunkLog = 4;
  static constexpr int kChunks = 28;  // 16 * (2^28 - 1) > kMaxNodes

  // An element of the index set: a node index.
  struct Slot {
    uint32_t index;
  };
  // A lookup key with its precomputed hash.
  template <class Q>
  struct Probe {
    const Q* key;
    size_t hash;
  };

  struct SetHash {
    using is_transparent = void;
    const NodeTable* table;
    size_t operator()(Slot s) const noexcept { return table->node(s.index).hash; }
    template <class Q>
    size_t operator()(const Probe<Q>& p) const noexcept {
      return p.hash;
    }
  };
  struct SetEq {
    using is_transparent = void;
    const NodeTable* table;
    bool operator()(Slot a, Slot b) const noexcept { return a.index == b.index; }
    template <class Q>
    bool operator()(const Probe<Q>& p, Slot s) const {
      return table->eq_(*p.key, table->node(s.index).key());
    }
    template <class Q>
    bool operator()(Slot s, const Probe<Q>& p) const {
      return (*this)(p, s);
    }
  };

  uint32_t allocate_node() {
    if (free_ != kNil) {
      const uint32_t index = free_;
      free_ = links_[index].next;
      return index;
    }
    SLUICE_CHECK(next_unused_ < kMaxNodes, "cache node table is full (2^31 nodes)");
    const auto index = static_cast<uint32_t>(next_unused_);
    const uint64_t j = uint64_t{index} + kFirstChunk;
    const int chunk = std::bit_width(j) - 1 - kFirstChunkLog;
    if (!chunks_[chunk]) chunks_[chunk] = std::make_unique<Node[]>(kFirstChunk << chunk);
    links_.emplace_back();
    ++next_unused_;
    return index;
  }
  void release_node(uint32_t index) noexcept {
    links_[index].next = free_;
    free_ = index;
  }
  static void destroy(Node& n) noexcept {
    std::destroy_at(&n.value());
    std::destroy_at(&n.key());
  }

  Hash hash_;
  Eq eq_;
  boost::unordered_flat_set<Slot, SetHash, SetEq> set_;
  std::unique_ptr<Node[]> chunks_[kChunks];
  // The list links, apart from the nodes: relinking a hit touches its neighbours' links, and
  // 8 bytes a node stay in cache where whole nodes would not.
  std::vector<Link> links_;
  size_t next_unused_ = 0;  // nodes ever handed out (the high-water mark)
  uint32_t free_ = kNil;    // head of the free list
};

}  // namespace sluice::cache::internal
