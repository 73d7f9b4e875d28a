// Thread-block scheduler of the CUDA simulation (cuda_runtime.h): every thread of
// a block is a fiber on the launching OS thread, switched by a hand-written x86-64
// context switch; __syncthreads hands control back to the scheduler.
//
// A block runs in phases. In each phase the scheduler resumes every live fiber,
// in the order VEIL_SIM_ORDER chooses, until it waits at a __syncthreads or
// returns. When every fiber of the block waits at the same barrier the next phase
// starts; a fiber that returned while others wait, or fibers waiting at different
// __syncthreads, is barrier divergence (undefined on a GPU): the scheduler prints
// the kernel, its launch number, the block and the threads, and aborts.
//
//   VEIL_SIM_ORDER   forward (default): threads 0..T-1 in each phase, blocks in grid order
//                    reverse: threads T-1..0 in each phase, blocks in reverse grid order
//                    shuffle: a fresh random permutation of the threads in every phase
//                             and of the blocks in every launch
//   VEIL_SIM_SEED    seed of the shuffle order (default 1)
//   VEIL_SIM_THREADS 1: one thread per block, blockDim forced to 1, no fibers (fast,
//                    as the simulator was before it ran real blocks)
//   VEIL_SIM_STACK_KB stack of each fiber in KiB (default 64), below it a guard page
#include <cuda_runtime.h>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <vector>

#if !defined(__x86_64__)
#error "tools/cuda_sim/sim_fiber.cpp: the fiber context switch is written for x86-64 only"
#endif

// void veil_sim_switch(void** save_sp, void* load_sp): pushes the callee-saved
// registers (System V: rbx, rbp, r12-r15), stores rsp in *save_sp, loads load_sp
// and pops the same frame from there. A new fiber's stack holds such a frame whose
// return address is fiber_entry. The MXCSR and x87 control words, callee-saved too,
// are not switched: no kernel changes them (saving and loading them made up most
// of the cost of a switch), so every fiber runs with the launching thread's.
extern "C" void veil_sim_switch(void** save_sp, void* load_sp);
asm(R"(
  .pushsection .text
  .globl veil_sim_switch
  .hidden veil_sim_switch
  .type veil_sim_switch, @function
  .p2align 4
veil_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size veil_sim_switch, .-veil_sim_switch
  .popsection
)");

namespace sim_detail {
namespace {

constexpr uint64_t kCanary = 0x5EB1C0DE5EB1C0DEull;
constexpr size_t kCanaryWords = 8;  // at the lowest addresses of the usable stack
constexpr unsigned kMaxBlockThreads = 1024;

enum class Order { Forward, Reverse, Shuffle };
enum class State : uint8_t { Ready, AtBarrier, Done };

struct Fiber {
  void* sp = nullptr;
  char* map = nullptr;  // mapping: guard page, then the stack
  size_t map_bytes = 0;
  sim_uint3 tid;
  State state = State::Done;
  unsigned barriers = 0;  // __syncthreads passed in this block
  const char* bar_file = nullptr;
  int bar_line = 0;
};

struct Config {
  Order order = Order::Forward;
  bool single = false;  // VEIL_SIM_THREADS=1
  uint64_t seed = 1;
  size_t stack_bytes = size_t{64} << 10;
  size_t page = 4096;
};

struct Scheduler {
  std::vector<Fiber*> pool;
  void* sched_sp = nullptr;
  Fiber* cur = nullptr;  // fiber running now, nullptr on the scheduler
  body_fn fn = nullptr;
  void* ctx = nullptr;
  const char* kernel = "";
  unsigned long long launch_no = 0;
  uint64_t rng = 0;
  std::vector<unsigned> perm;
  std::vector<size_t> block_perm;
  bool altstack = false;
};

Config g_cfg;
bool g_cfg_ready = false;
thread_local Scheduler S;

[[noreturn]] void die(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("\ncuda_sim: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputs("\n", stderr);
  va_end(ap);
  std::fflush(stderr);
  std::abort();
}

}  // namespace

[[noreturn]] void fail(const char* message) { die("%s", message); }

namespace {

uint64_t next_random() {  // splitmix64
  uint64_t z = (S.rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <class T> void shuffle(std::vector<T>& v) {
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(((unsigned __int128)next_random() * i) >> 64);
    std::swap(v[i - 1], v[j]);
  }
}

void read_config() {
  if (g_cfg_ready) return;
  g_cfg_ready = true;
  if (const char* o = std::getenv("VEIL_SIM_ORDER"); o && *o) {
    if (!std::strcmp(o, "forward")) g_cfg.order = Order::Forward;
    else if (!std::strcmp(o, "reverse")) g_cfg.order = Order::Reverse;
    else if (!std::strcmp(o, "shuffle")) g_cfg.order = Order::Shuffle;
    else die("VEIL_SIM_ORDER=%s: expected forward, reverse or shuffle", o);
  }
  if (const char* t = std::getenv("VEIL_SIM_THREADS"); t && *t) {
    if (!std::strcmp(t, "1")) g_cfg.single = true;
    else die("VEIL_SIM_THREADS=%s: expected 1 (one thread per block) or unset (real block sizes)", t);
  }
  if (const char* s = std::getenv("VEIL_SIM_SEED"); s && *s) {
    char* end = nullptr;
    g_cfg.seed = std::strtoull(s, &end, 0);
    if (*end) die("VEIL_SIM_SEED=%s: expected an integer", s);
  }
  if (const char* k = std::getenv("VEIL_SIM_STACK_KB"); k && *k) {
    char* end = nullptr;
    const unsigned long long kb = std::strtoull(k, &end, 0);
    if (*end || kb < 16 || kb > (1u << 20)) die("VEIL_SIM_STACK_KB=%s: expected 16 .. 1048576", k);
    g_cfg.stack_bytes = static_cast<size_t>(kb) << 10;
  }
  g_cfg.page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  g_cfg.stack_bytes = (g_cfg.stack_bytes + g_cfg.page - 1) / g_cfg.page * g_cfg.page;
  static const char* names[] = {"forward", "reverse", "shuffle"};
  std::fprintf(stderr, "cuda_sim: %s, order %s", g_cfg.single ? "one thread per block" : "real thread blocks",
               names[static_cast<int>(g_cfg.order)]);
  if (g_cfg.order == Order::Shuffle) std::fprintf(stderr, ", seed %llu", (unsigned long long)g_cfg.seed);
  std::fputs("\n", stderr);
}

// A fault in a fiber's guard page is a stack overflow: say so (on the signal
// stack) instead of a bare segmentation fault. Other faults go to the previous
// handler (the default one: the fault repeats and kills the process).
struct sigaction g_old_segv;

bool in_guard(const Scheduler& s, uintptr_t a) {
  for (const Fiber* f : s.pool) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(f->map);
    if (a >= lo && a < lo + g_cfg.page) return true;
  }
  return false;
}

void on_segv(int sig, siginfo_t* info, void* uc) {
  if (in_guard(S, reinterpret_cast<uintptr_t>(info->si_addr))) {
    char msg[512];
    const int n = std::snprintf(msg, sizeof msg,
                                "\ncuda_sim: stack overflow of a fiber (thread (%u,%u,%u)) in kernel launch #%llu "
                                "(%s), block (%u,%u,%u); raise VEIL_SIM_STACK_KB (now %zu)\n",
                                threadIdx.x, threadIdx.y, threadIdx.z, S.launch_no, S.kernel, blockIdx.x,
                                blockIdx.y, blockIdx.z, g_cfg.stack_bytes >> 10);
    if (n > 0) (void)!write(2, msg, static_cast<size_t>(std::min<int>(n, sizeof msg - 1)));
    signal(SIGABRT, SIG_DFL);
    abort();
  }
  if (g_old_segv.sa_flags & SA_SIGINFO) {
    if (g_old_segv.sa_sigaction) return g_old_segv.sa_sigaction(sig, info, uc);
  } else if (g_old_segv.sa_handler != SIG_DFL && g_old_segv.sa_handler != SIG_IGN) {
    return g_old_segv.sa_handler(sig);
  }
  sigaction(SIGSEGV, &g_old_segv, nullptr);  // fault again with the old action
}

void install_overflow_handler() {
  if (S.altstack) return;
  S.altstack = true;
  stack_t ss{};
  ss.ss_size = size_t{64} << 10;
  ss.ss_sp = std::malloc(ss.ss_size);
  if (!ss.ss_sp || sigaltstack(&ss, nullptr) != 0) die("sigaltstack failed");
  static bool installed = false;
  if (installed) return;
  installed = true;
  struct sigaction sa {};
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
}

[[noreturn]] void fiber_entry() {
  for (;;) {
    S.fn(S.ctx);
    Fiber* self = S.cur;
    self->state = State::Done;
    veil_sim_switch(&self->sp, S.sched_sp);  // resumed only to run the next block's thread
  }
}

// Fresh frame for veil_sim_switch to pop: r15..r12, rbx, rbp = 0, return address
// fiber_entry, and under it a zero "return address" of fiber_entry, so that
// fiber_entry starts with rsp = 8 (mod 16) as after a call. The top of each stack
// is offset by a multiple of 64 bytes (index mod 32), so that the hot frames of
// the fibers do not all fall into the same cache sets.
void init_stack(Fiber& f, size_t index) {
  char* top_bytes = f.map + f.map_bytes - (index % 32) * 64;
  uint64_t* top = reinterpret_cast<uint64_t*>(top_bytes);  // 64-byte aligned
  top[-1] = 0;
  top[-2] = reinterpret_cast<uint64_t>(&fiber_entry);
  for (int i = 3; i <= 8; ++i) top[-i] = 0;
  f.sp = &top[-8];
}

Fiber* new_fiber(size_t index) {
  const size_t bytes = g_cfg.page + g_cfg.stack_bytes;
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) die("mmap of a %zu-byte fiber stack failed", bytes);
  if (mprotect(m, g_cfg.page, PROT_NONE) != 0) die("mprotect of a guard page failed");
  auto* f = new Fiber;
  f->map = static_cast<char*>(m);
  f->map_bytes = bytes;
  auto* bottom = reinterpret_cast<uint64_t*>(f->map + g_cfg.page);
  for (size_t i = 0; i < kCanaryWords; ++i) bottom[i] = kCanary;
  init_stack(*f, index);
  return f;
}

void check_canary(const Fiber& f, unsigned t) {
  const auto* bottom = reinterpret_cast<const uint64_t*>(f.map + g_cfg.page);
  for (size_t i = 0; i < kCanaryWords; ++i)
    if (bottom[i] != kCanary)
      die("stack overflow of thread %u (canary below its stack overwritten) in kernel launch #%llu (%s); raise "
          "VEIL_SIM_STACK_KB (now %zu)",
          t, S.launch_no, S.kernel, g_cfg.stack_bytes >> 10);
}

void resume(Fiber& f) {
  threadIdx = f.tid;
  S.cur = &f;
  veil_sim_switch(&S.sched_sp, f.sp);
  S.cur = nullptr;
}

// Fibers 0 .. threads-1 with their thread indices (once per launch).
void prepare_fibers(unsigned threads) {
  while (S.pool.size() < threads) S.pool.push_back(new_fiber(S.pool.size()));
  const unsigned bx = blockDim.x, by = blockDim.y;
  for (unsigned t = 0; t < threads; ++t) S.pool[t]->tid = sim_uint3{t % bx, (t / bx) % by, t / (bx * by)};
}

void run_block_fibers(unsigned threads) {
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = *S.pool[t];
    f.state = State::Ready;
    f.barriers = 0;
  }
  if (g_cfg.order == Order::Shuffle) {
    S.perm.resize(threads);
    for (unsigned t = 0; t < threads; ++t) S.perm[t] = t;
  }
  for (unsigned phase = 0;; ++phase) {
    switch (g_cfg.order) {
      case Order::Forward:
        for (unsigned t = 0; t < threads; ++t)
          if (S.pool[t]->state == State::Ready) resume(*S.pool[t]);
        break;
      case Order::Reverse:
        for (unsigned t = threads; t-- > 0;)
          if (S.pool[t]->state == State::Ready) resume(*S.pool[t]);
        break;
      case Order::Shuffle:
        shuffle(S.perm);
        for (unsigned t : S.perm)
          if (S.pool[t]->state == State::Ready) resume(*S.pool[t]);
        break;
    }
    threadIdx = sim_uint3{};
    const Fiber* waiting = nullptr;
    const Fiber* done = nullptr;
    unsigned n_waiting = 0;
    for (unsigned t = 0; t < threads; ++t) {
      const Fiber& f = *S.pool[t];
      if (f.state == State::AtBarrier) {
        if (!waiting) waiting = &f;
        ++n_waiting;
        if (f.bar_line != waiting->bar_line || std::strcmp(f.bar_file, waiting->bar_file) != 0)
          die("barrier divergence in kernel launch #%llu (%s), block (%u,%u,%u), barrier phase %u: thread "
              "(%u,%u,%u) waits at __syncthreads %s:%d, thread (%u,%u,%u) at %s:%d. Every thread of a block "
              "must reach the same __syncthreads (undefined behaviour on a GPU).",
              S.launch_no, S.kernel, blockIdx.x, blockIdx.y, blockIdx.z, phase, waiting->tid.x, waiting->tid.y,
              waiting->tid.z, waiting->bar_file, waiting->bar_line, f.tid.x, f.tid.y, f.tid.z, f.bar_file,
              f.bar_line);
      } else if (!done) {
        done = &f;
      }
    }
    if (n_waiting == 0) break;
    if (done)
      die("barrier divergence in kernel launch #%llu (%s), block (%u,%u,%u): %u of %u threads wait at their "
          "__syncthreads #%u (%s:%d, e.g. thread (%u,%u,%u)) but thread (%u,%u,%u) returned after %u "
          "__syncthreads. Every thread of a block must call __syncthreads the same number of times "
          "(undefined behaviour on a GPU).",
          S.launch_no, S.kernel, blockIdx.x, blockIdx.y, blockIdx.z, n_waiting, threads, waiting->barriers,
          waiting->bar_file, waiting->bar_line, waiting->tid.x, waiting->tid.y, waiting->tid.z, done->tid.x,
          done->tid.y, done->tid.z, done->barriers);
    for (unsigned t = 0; t < threads; ++t) S.pool[t]->state = State::Ready;
  }
}

}  // namespace

void syncthreads(const char* file, int line) {
  Fiber* f = S.cur;
  if (!f) return;  // VEIL_SIM_THREADS=1, or outside a kernel
  f->state = State::AtBarrier;
  f->bar_file = file;
  f->bar_line = line;
  ++f->barriers;
  veil_sim_switch(&f->sp, S.sched_sp);
}

namespace {
std::mutex g_tally_mutex;
std::vector<KernelTally> g_tally;

void count_launch(const char* kernel, size_t blocks, unsigned long long threads) {
  std::lock_guard<std::mutex> lock(g_tally_mutex);
  for (auto& t : g_tally)
    if (std::strcmp(t.kernel, kernel) == 0) {
      ++t.launches;
      t.blocks += blocks;
      return;
    }
  g_tally.push_back(KernelTally{kernel, 1, blocks, threads});
}
}  // namespace

void reset_launch_tally() {
  std::lock_guard<std::mutex> lock(g_tally_mutex);
  g_tally.clear();
}

std::vector<KernelTally> launch_tally() {
  std::lock_guard<std::mutex> lock(g_tally_mutex);
  return g_tally;
}

void launch(dim3 grid, dim3 block, size_t dynamic_smem, const char* kernel, body_fn fn, void* ctx) {
  read_config();
  if (S.cur) die("kernel %s launched from inside a kernel (dynamic parallelism is not simulated)", kernel);
  const unsigned long long launch_no = ++S.launch_no;
  S.kernel = kernel;
  if (launch_no == 1) S.rng = g_cfg.seed;
  if (dynamic_smem != 0)
    die("kernel launch #%llu (%s) asks for %zu bytes of dynamic shared memory, which the simulator does not "
        "support",
        launch_no, kernel, dynamic_smem);
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || threads == 0 ||
      threads > kMaxBlockThreads || block.z > 64)
    die("invalid configuration of kernel launch #%llu (%s): grid (%u,%u,%u), block (%u,%u,%u) (a GPU refuses "
        "it with cudaErrorInvalidConfiguration)",
        launch_no, kernel, grid.x, grid.y, grid.z, block.x, block.y, block.z);
  count_launch(kernel, (size_t)grid.x * grid.y * grid.z, threads);
  gridDim = grid;
  blockDim = g_cfg.single ? dim3(1, 1, 1) : block;
  S.fn = fn;
  S.ctx = ctx;
  if (!g_cfg.single) {
    install_overflow_handler();
    prepare_fibers(static_cast<unsigned>(threads));
  }
  const size_t blocks = (size_t)grid.x * grid.y * grid.z;
  if (g_cfg.order == Order::Shuffle) {
    S.block_perm.resize(blocks);
    for (size_t b = 0; b < blocks; ++b) S.block_perm[b] = b;
    shuffle(S.block_perm);
  }
  for (size_t i = 0; i < blocks; ++i) {
    const size_t b = g_cfg.order == Order::Forward ? i
                     : g_cfg.order == Order::Reverse ? blocks - 1 - i
                                                     : S.block_perm[i];
    blockIdx = sim_uint3{static_cast<unsigned>(b % grid.x), static_cast<unsigned>((b / grid.x) % grid.y),
                         static_cast<unsigned>(b / ((size_t)grid.x * grid.y))};
    ++block_serial;
    if (g_cfg.single) {
      threadIdx = sim_uint3{};
      fn(ctx);
    } else {
      run_block_fibers(static_cast<unsigned>(threads));
    }
  }
  if (!g_cfg.single)  // the guard page catches most overflows at once; this, frames that jump over it
    for (unsigned t = 0; t < threads; ++t) check_canary(*S.pool[t], t);
  S.fn = nullptr;
  S.ctx = nullptr;
}

}  // namespace sim_detail
