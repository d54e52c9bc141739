# Python reference for samples/mp_pool.cpp: the Pool tour of CPython's
# Doc/includes/mp_pool.py (3.11; R Oudkerk, Python Software Foundation, PSF
# License), written out for this project with the same calls and the same
# output, in the "processes" mode only.
import multiprocessing
import random
import sys
import time


def calculate(func, args):
    result = func(*args)
    return '%s says that %s%s = %s' % (multiprocessing.current_process().name, func.__name__, args, result)


def calculatestar(args):
    return calculate(*args)


def mul(a, b):
    time.sleep(0.5 * random.random())
    return a * b


def plus(a, b):
    time.sleep(0.5 * random.random())
    return a + b


def f(x):
    return 1.0 / (x - 5.0)


def pow3(x):
    return x ** 3


def noop(x):
    pass


def print_results(title, results):
    print(title)
    for result in results:
        print('\t', result)
    print()


def expect_zero_division(what, call):
    try:
        call()
    except ZeroDivisionError:
        print('\tGot ZeroDivisionError as expected from %s' % what)
    else:
        raise AssertionError('expected ZeroDivisionError')


def timed(title, call):
    start = time.time()
    result = call()
    print('\t%s:\n\t\t%s seconds' % (title, time.time() - start))
    return result


def test():
    print('cpu_count() = %d\n' % multiprocessing.cpu_count())

    processes = 4
    print('Creating pool with %d processes\n' % processes)
    pool = multiprocessing.Pool(processes)
    print('pool = %s' % pool)
    print()

    tasks = [(mul, (i, 7)) for i in range(10)] + [(plus, (i, 8)) for i in range(10)]
    results = [pool.apply_async(calculate, task) for task in tasks]
    imap_it = pool.imap(calculatestar, tasks)
    imap_unordered_it = pool.imap_unordered(calculatestar, tasks)
    print_results('Ordered results using pool.apply_async():', [r.get() for r in results])
    print_results('Ordered results using pool.imap():', imap_it)
    print_results('Unordered results using pool.imap_unordered():', imap_unordered_it)
    print_results('Ordered results using pool.map() --- will block till complete:',
                  pool.map(calculatestar, tasks))

    n = 100000
    print('def pow3(x): return x**3')
    a = timed('map(pow3, range(%d))' % n, lambda: list(map(pow3, range(n))))
    b = timed('pool.map(pow3, range(%d))' % n, lambda: pool.map(pow3, range(n)))
    c = timed('list(pool.imap(pow3, range(%d), chunksize=%d))' % (n, n // 8),
              lambda: list(pool.imap(pow3, range(n), chunksize=n // 8)))
    assert a == b == c
    print()

    nones = [None] * 1000000
    print('def noop(x): pass')
    print('L = [None] * 1000000')
    a = timed('map(noop, L)', lambda: list(map(noop, nones)))
    b = timed('pool.map(noop, L)', lambda: pool.map(noop, nones))
    c = timed('list(pool.imap(noop, L, chunksize=%d))' % (len(nones) // 8),
              lambda: list(pool.imap(noop, nones, chunksize=len(nones) // 8)))
    assert a == b == c
    print()

    print('Testing error handling:')
    expect_zero_division('pool.apply()', lambda: print(pool.apply(f, (5,))))
    expect_zero_division('pool.map()', lambda: print(pool.map(f, list(range(10)))))
    expect_zero_division('list(pool.imap())', lambda: print(list(pool.imap(f, list(range(10))))))
    it = pool.imap(f, list(range(10)))
    for i in range(10):
        try:
            next(it)
        except ZeroDivisionError:
            pass
        except StopIteration:
            break
        else:
            assert i != 5, 'expected ZeroDivisionError'
    assert i == 9
    print('\tGot ZeroDivisionError as expected from IMapIterator.next()')
    print()

    print('Testing ApplyResult.get() with timeout:', end=' ')
    res = pool.apply_async(calculate, tasks[0])
    while True:
        sys.stdout.flush()
        try:
            sys.stdout.write('\n\t%s' % res.get(0.02))
            break
        except multiprocessing.TimeoutError:
            sys.stdout.write('.')
    print()
    print()

    print('Testing IMapIterator.next() with timeout:', end=' ')
    it = pool.imap(calculatestar, tasks)
    while True:
        sys.stdout.flush()
        try:
            sys.stdout.write('\n\t%s' % it.next(0.02))
        except StopIteration:
            break
        except multiprocessing.TimeoutError:
            sys.stdout.write('.')
    print()
    print()

    print('Testing callback:')
    got = []
    expected = [56, 0, 1, 8, 27, 64, 125, 216, 343, 512, 729]
    pool.apply_async(mul, (7, 8), callback=got.append).wait()
    pool.map_async(pow3, list(range(10)), callback=got.extend).wait()
    print('\tcallbacks succeeded\n' if got == expected else '\t*** callbacks failed\n')

    print('Testing close():')
    assert all(worker.is_alive() for worker in pool._pool)
    slept = pool.apply_async(time.sleep, [0.5])
    pool.close()
    pool.join()
    assert slept.get() is None
    assert not any(worker.is_alive() for worker in pool._pool)
    print('\tclose() succeeded\n')

    print('Testing terminate():')
    delta = 0.1
    pool = multiprocessing.Pool(2)
    pool.apply(pow3, [2])
    results = [pool.apply_async(time.sleep, [delta]) for _ in range(100)]
    pool.terminate()
    pool.join()
    assert not any(worker.is_alive() for worker in pool._pool)
    print('\tterminate() succeeded\n')

    print('Testing garbage collection:')
    pool = multiprocessing.Pool(2)
    workers = pool._pool
    pool.apply(pow3, [2])
    results = [pool.apply_async(time.sleep, [delta]) for _ in range(100)]
    results = pool = None
    # The original sleeps delta * 2 and asserts; on a loaded machine the
    # terminated workers take longer to go, so wait for them (at most 30 s).
    deadline = time.monotonic() + 30
    while any(worker.is_alive() for worker in workers) and time.monotonic() < deadline:
        time.sleep(delta * 2)
    assert not any(worker.is_alive() for worker in workers)
    print('\tgarbage collection succeeded\n')


if __name__ == '__main__':
    print(' Using processes '.center(79, '-'))
    test()
