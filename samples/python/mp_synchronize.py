# Python reference for samples/mp_synchronize.cpp: the synchronisation tour of
# CPython's Doc/includes/mp_synchronize.py (3.11; R Oudkerk, Python Software
# Foundation, PSF License), written out for this project with the same calls
# and the same output, in the "processes" mode only.
import multiprocessing
import random
import sys
import time
from queue import Empty


def value_func(running, mutex):
    random.seed()
    time.sleep(random.random() * 4)
    with mutex:
        print('\n\t\t\t' + str(multiprocessing.current_process()) + ' has finished')
        running.value -= 1


def test_value():
    tasks = 10
    running = multiprocessing.Value('i', tasks)
    mutex = multiprocessing.Lock()
    for _ in range(tasks):
        multiprocessing.Process(target=value_func, args=(running, mutex)).start()
    while running.value > 0:
        time.sleep(0.08)
        with mutex:
            print(running.value, end=' ')
            sys.stdout.flush()
    print()
    print('No more running processes')


def queue_func(queue):
    for i in range(30):
        time.sleep(0.5 * random.random())
        queue.put(i * i)
    queue.put('STOP')


def test_queue():
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=queue_func, args=(q,))
    p.start()
    o = None
    while o != 'STOP':
        try:
            o = q.get(timeout=0.3)
            print(o, end=' ')
            sys.stdout.flush()
        except Empty:
            print('TIMEOUT')
    print()


def condition_func(cond):
    cond.acquire()
    print('\t' + str(cond))
    time.sleep(2)
    print('\tchild is notifying')
    print('\t' + str(cond))
    cond.notify()
    cond.release()


def test_condition():
    cond = multiprocessing.Condition()
    p = multiprocessing.Process(target=condition_func, args=(cond,))
    print(cond)
    cond.acquire()
    print(cond)
    cond.acquire()
    print(cond)
    p.start()
    print('main is waiting')
    cond.wait()
    print('main has woken up')
    print(cond)
    cond.release()
    print(cond)
    cond.release()
    p.join()
    print(cond)


def semaphore_func(sema, mutex, running):
    sema.acquire()
    with mutex:
        running.value += 1
        print(running.value, 'tasks are running')
    random.seed()
    time.sleep(random.random() * 2)
    with mutex:
        running.value -= 1
        print('%s has finished' % multiprocessing.current_process())
    sema.release()


def test_semaphore():
    sema = multiprocessing.Semaphore(3)
    mutex = multiprocessing.RLock()
    running = multiprocessing.Value('i', 0)
    processes = [multiprocessing.Process(target=semaphore_func, args=(sema, mutex, running)) for _ in range(10)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()


def join_timeout_func():
    print('\tchild sleeping')
    time.sleep(5.5)
    print('\n\tchild terminating')


def test_join_timeout():
    p = multiprocessing.Process(target=join_timeout_func)
    p.start()
    print('waiting for process to finish')
    while True:
        p.join(timeout=1)
        if not p.is_alive():
            break
        print('.', end=' ')
        sys.stdout.flush()


def event_func(event):
    print('\t%r is waiting' % multiprocessing.current_process())
    event.wait()
    print('\t%r has woken up' % multiprocessing.current_process())


def test_event():
    event = multiprocessing.Event()
    processes = [multiprocessing.Process(target=event_func, args=(event,)) for _ in range(5)]
    for p in processes:
        p.start()
    print('main is sleeping')
    time.sleep(2)
    print('main is setting event')
    event.set()
    for p in processes:
        p.join()


def sharedvalues_func(values, arrays, shared_values, shared_arrays):
    for (_, value), shared in zip(values, shared_values):
        assert value == shared.value
    for (_, array), shared in zip(arrays, shared_arrays):
        assert array == list(shared[:])
    print('Tests passed')


def test_sharedvalues():
    values = [('i', 10), ('h', -2), ('d', 1.25)]
    arrays = [('i', list(range(100))), ('d', [0.25 * i for i in range(100)]), ('H', list(range(1000)))]
    shared_values = [multiprocessing.Value(code, value) for code, value in values]
    shared_arrays = [multiprocessing.Array(code, array) for code, array in arrays]
    p = multiprocessing.Process(target=sharedvalues_func, args=(values, arrays, shared_values, shared_arrays))
    p.start()
    p.join()
    assert p.exitcode == 0


if __name__ == '__main__':
    print(' Using processes '.center(79, '-'))
    for test in [test_value, test_queue, test_condition, test_semaphore, test_join_timeout, test_event,
                 test_sharedvalues]:
        print('\n\t######## %s\n' % test.__name__)
        test()
    multiprocessing.active_children()  # clean up any old processes
