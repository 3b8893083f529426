# cio-gdb.py: cio's tasks in gdb, from a live process or a core file.
#
#   (gdb) source /usr/local/share/cio/cio-gdb.py
#   (gdb) cio tasks          every task of the loop on the selected thread
#   (gdb) cio bt ID          the backtrace of task ID
#   (gdb) cio bt all         the backtraces of every task
#
# Needs libcio built with debug info (the default RelWithDebInfo build).
# `cio tasks` lists what cio_task_dump() prints: id, name, state, what a
# waiting task waits on, when its timer fires, its stack and spawn site.
#
# A suspended task's registers are saved on its own stack by the context
# switch. On a live process `cio bt` loads them into the thread for the
# length of one `bt` and puts the real ones back. A core file's registers
# cannot be changed, so there `cio bt` lists the return addresses found
# on the task's stack above its saved stack pointer (a scan: stale
# addresses can show up too). gdb's own `gcore` cannot copy a slab of
# stacks whose guard pages are MADV_GUARD_INSTALL markers (Linux 6.13+)
# and leaves it out of the core; `cio tasks` still works on such a core.
import gdb

STATES = {1: "runnable", 2: "running", 3: "waiting", 4: "done"}
# x86_64 cio__ctx_switch pushes rbp rbx r12 r13 r14 r15, then saves rsp.
X86_SAVED = ["r15", "r14", "r13", "r12", "rbx", "rbp"]


def loop_ptr():
    try:
        l = gdb.parse_and_eval("cio__loop")
    except gdb.error as e:
        raise gdb.GdbError(f"cio: cannot read cio__loop ({e}); is this "
                           "thread running a cio loop, with debug info?")
    if int(l) == 0:
        raise gdb.GdbError("cio: no loop on this thread (cio__loop is NULL); "
                           "try `thread N` for the loop's thread")
    return l


def tasks():
    l = loop_ptr()
    t = l["tasks"]
    while int(t) != 0:
        yield t
        t = t["all_next"]


def state_name(t):
    try:
        return STATES.get(int(t["state"]), str(int(t["state"])))
    except gdb.error:
        return "?"


def wait_name(kind):
    try:
        fn = gdb.parse_and_eval("cio__wait_kind_name")
        return fn(kind).string()
    except gdb.error:
        pass
    try:
        # Without a process (core file): the enum's own names.
        enum = gdb.lookup_type("enum cio__wait_kind")
        for f in enum.fields():
            if f.enumval == kind:
                return f.name.replace("CIO__W_", "").lower()
    except gdb.error:
        pass
    return str(kind)


def symbol(addr):
    try:
        out = gdb.execute(f"info symbol {int(addr):#x}", to_string=True)
        return out.strip().split(" in section")[0]
    except gdb.error:
        return f"{int(addr):#x}"


def find(ident):
    for t in tasks():
        if int(t["id"]) == ident:
            return t
    raise gdb.GdbError(f"cio: no task with id {ident}")


class CioPrefix(gdb.Command):
    """cio's tasks: `cio tasks`, `cio bt ID|all`."""

    def __init__(self):
        super().__init__("cio", gdb.COMMAND_USER, prefix=True)


class CioTasks(gdb.Command):
    """List the tasks of the cio loop on the selected thread."""

    def __init__(self):
        super().__init__("cio tasks", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        l = loop_ptr()
        now = int(l["now"])
        n = 0
        for t in tasks():
            n += 1
            name = t["name"].string(length=32).split("\0")[0] or "(unnamed)"
            line = f"task {int(t['id'])} \"{name}\" {state_name(t)}"
            if state_name(t) == "waiting":
                line += f" on {wait_name(int(t['wait_kind']))}"
                obj = int(t["wait_obj"])
                if obj:
                    line += f" {obj:#x}"
                if int(t["timer"]["idx"]):
                    left = (int(t["timer"]["when"]) - now) / 1e9
                    line += f", wakes in {left:.3f} s"
            size = int(t["stack"]["size"])
            line += f", stack {size} bytes"
            site = int(t["spawn_site"])
            if site:
                line += f", spawned at {symbol(site)}"
            gdb.write(line + "\n")
        gdb.write(f"{n} task(s)\n")


class CioBt(gdb.Command):
    """Backtrace of a cio task: `cio bt ID` or `cio bt all`."""

    def __init__(self):
        super().__init__("cio bt", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if arg == "all":
            chosen = list(tasks())
        else:
            try:
                chosen = [find(int(arg))]
            except ValueError:
                raise gdb.GdbError("usage: cio bt ID|all")
        for t in chosen:
            name = t["name"].string(length=32).split("\0")[0]
            gdb.write(f"task {int(t['id'])} \"{name}\" {state_name(t)}:\n")
            if state_name(t) == "running":
                gdb.write("  (running: it is the thread's own backtrace)\n")
                gdb.execute("bt")
            elif state_name(t) == "done":
                gdb.write("  (finished: no stack)\n")
            else:
                self.suspended(t)

    def suspended(self, t):
        arch = gdb.selected_frame().architecture().name()
        if "x86-64" not in arch:
            gdb.write(f"  (cio bt knows the x86_64 context only, not {arch})\n")
            return
        try:
            sp = int(t["ctx"]["sp"])
        except gdb.error:
            gdb.write("  (ucontext build: use the task's ctx.uc)\n")
            return
        inf = gdb.selected_inferior()
        words = [int.from_bytes(inf.read_memory(sp + 8 * i, 8), "little")
                 for i in range(7)]
        regs = dict(zip(X86_SAVED, words[:6]))
        regs["rip"] = words[6]
        regs["rsp"] = sp + 56
        try:
            self.with_registers(regs)
        except gdb.error:
            self.scan(t, sp)

    def with_registers(self, regs):
        gdb.execute("select-frame 0")
        saved = {r: int(gdb.parse_and_eval(f"${r}")) for r in regs}
        try:
            for r, v in regs.items():
                gdb.execute(f"set ${r} = {v:#x}")
            gdb.execute("bt")
        finally:
            for r, v in saved.items():
                try:
                    gdb.execute(f"set ${r} = {v:#x}")
                except gdb.error:
                    pass

    def scan(self, t, sp):
        lo = int(t["stack"]["lo"])
        hi = lo + int(t["stack"]["size"])
        inf = gdb.selected_inferior()
        n = 0
        head = [int.from_bytes(inf.read_memory(sp + 8 * i, 8), "little")
                for i in range(16)]
        if not any(head):
            gdb.write("  (the core file holds no copy of this stack: gdb's "
                      "gcore skips a stack slab it cannot read whole)\n")
            return
        gdb.write("  (core file: return addresses on the task's stack)\n")
        for p in range(sp + 48, hi, 8):
            word = int.from_bytes(inf.read_memory(p, 8), "little")
            if word < 4096:
                continue
            sym = symbol(word)
            if sym.startswith("No symbol") or sym.startswith("0x"):
                continue
            gdb.write(f"  #{n} {word:#x} in {sym}\n")
            n += 1
            if n == 32:
                break


CioPrefix()
CioTasks()
CioBt()
