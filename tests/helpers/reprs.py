"""Python's repr() of multiprocessing objects in fixed states, one line each,
pids and addresses replaced by N and ADDR: test_process ("process") and
test_synchronize ("synchronize") build the same states with mp and compare.
"""
import multiprocessing as mp
import re
import sys
import threading
import time


def show(obj):
    text = re.sub(r"(pid|parent)=\d+", r"\1=N", repr(obj))
    print(re.sub(r"0x[0-9a-f]+", "ADDR", text), flush=True)


class Worker(mp.Process):
    def run(self):
        pass


def process_states():
    p = mp.Process(target=sys.exit, args=(3,), name="it's")
    show(p)
    p.start()
    p.join()
    show(p)
    p.close()
    show(p)
    d = mp.Process(target=time.sleep, args=(30,), name='tab\t"quoted"\\', daemon=True)
    d.start()
    show(d)
    d.terminate()
    d.join()
    show(d)
    w = Worker(name="w")
    w.start()
    w.join()
    show(w)


def hold(lock, held, release):
    lock.acquire()
    held.set()
    release.wait(30)
    lock.release()


def shown_while_held(lock, start):
    held, release = mp.Event(), mp.Event()
    holder = start(hold, (lock, held, release))
    held.wait(30)
    show(lock)
    release.set()
    holder.join(30)


def started_process(target, args):
    p = mp.Process(target=target, args=args)
    p.start()
    return p


def started_thread(target, args):
    t = threading.Thread(target=target, args=args)
    t.start()
    return t


def wait_on(condition):
    with condition:
        condition.wait(30)


def synchronize_states():
    lock = mp.Lock()
    show(lock)
    lock.acquire()
    show(lock)
    lock.release()
    shown_while_held(mp.Lock(), started_process)
    rlock = mp.RLock()
    show(rlock)
    rlock.acquire()
    rlock.acquire()
    show(rlock)
    rlock.release()
    rlock.release()
    shown_while_held(mp.RLock(), started_process)
    shown_while_held(mp.RLock(), started_thread)
    semaphore = mp.Semaphore(3)
    semaphore.acquire()
    show(semaphore)
    bounded = mp.BoundedSemaphore(2)
    bounded.acquire()
    show(bounded)
    condition = mp.Condition()
    show(condition)
    show(mp.Condition(mp.Lock()))
    waiter = started_thread(wait_on, (condition,))
    deadline = time.monotonic() + 30
    while repr(condition).endswith(" 0)>") and time.monotonic() < deadline:
        time.sleep(0.01)
    show(condition)
    with condition:
        condition.notify()
    waiter.join(30)
    event = mp.Event()
    show(event)
    event.set()
    show(event)


if __name__ == "__main__":
    mp.set_start_method("fork")
    {"process": process_states, "synchronize": synchronize_states}[sys.argv[1]]()
