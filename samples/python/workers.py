# Python reference for samples/workers.cpp: CPython's Doc/includes/mp_workers.py
# (Python Software Foundation, PSF License), written out for this project
# with the same calls and the same output.
import random
import time
from multiprocessing import Process, Queue, current_process


def calculate(func, args):
    return '%s says that %s%s = %s' % (current_process().name, func.__name__, args, func(*args))


def worker(tasks, results):
    for func, args in iter(tasks.get, 'STOP'):
        results.put(calculate(func, args))


def mul(a, b):
    time.sleep(0.5 * random.random())
    return a * b


def plus(a, b):
    time.sleep(0.5 * random.random())
    return a + b


if __name__ == '__main__':
    processes = 4
    first = [(mul, (i, 7)) for i in range(20)]
    second = [(plus, (i, 8)) for i in range(10)]
    task_queue = Queue()
    done_queue = Queue()
    for task in first:
        task_queue.put(task)
    for _ in range(processes):
        Process(target=worker, args=(task_queue, done_queue)).start()
    print('Unordered results:')
    for _ in first:
        print('\t', done_queue.get())
    for task in second:
        task_queue.put(task)
    for _ in second:
        print('\t', done_queue.get())
    for _ in range(processes):
        task_queue.put('STOP')
