# Python reference for samples/shared_point.cpp: the sharedctypes example of
# the multiprocessing docs ("Shared ctypes objects"; Python Software
# Foundation, PSF License), written out for this project with the same calls
# and the same output.
from ctypes import Structure, c_double
from multiprocessing import Lock, Process
from multiprocessing.sharedctypes import Array, Value


class Point(Structure):
    _fields_ = [('x', c_double), ('y', c_double)]


def modify(n, x, s, points):
    n.value **= 2
    x.value **= 2
    s.value = s.value.upper()
    for point in points:
        point.x **= 2
        point.y **= 2


if __name__ == '__main__':
    lock = Lock()
    n = Value('i', 7)
    x = Value(c_double, 1.0 / 3.0, lock=False)
    s = Array('c', b'hello world', lock=lock)
    points = Array(Point, [(1.875, -6.25), (-5.75, 2.0), (2.375, 9.5)], lock=lock)

    child = Process(target=modify, args=(n, x, s, points))
    child.start()
    child.join()

    print(n.value)
    print(x.value)
    print(s.value)
    print([(point.x, point.y) for point in points])
