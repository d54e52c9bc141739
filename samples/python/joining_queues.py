# Python reference for samples/joining_queues.cpp: "Joining processes that use
# queues" from the programming guidelines of the multiprocessing docs (Python
# Software Foundation, PSF License), written out for this project with a line
# of output. With "join-first" it joins before get() as the docs warn against,
# bounded by a timeout: the child is still alive then (its feeder thread
# cannot flush the item), which is the deadlock the docs describe.
import sys
from multiprocessing import Process, Queue


def f(queue):
    queue.put('X' * 1000000)


if __name__ == '__main__':
    queue = Queue()
    p = Process(target=f, args=(queue,))
    p.start()
    if sys.argv[1:] == ['join-first']:
        p.join(timeout=3)
        print('alive after join(timeout=3):', p.is_alive())
    obj = queue.get()
    p.join()
    print("got %d bytes: '%s...'; exitcode %d" % (len(obj), obj[:3], p.exitcode))
