# Python reference for samples/listener_client.cpp: the Listener/Client pair
# of the multiprocessing docs ("Listeners and Clients"; Python Software
# Foundation, PSF License), written out for this project as one program with
# two roles. The server listens on any free port (the docs use 6000) and
# prints its address first, so that a client can be pointed at it.
#   listener_client.py server [with-class]   with-class: the docs' object
#                                             exactly, with the class float
#   listener_client.py client PORT
import sys
from array import array
from multiprocessing.connection import Client, Listener

AUTHKEY = b'secret password'


def serve(with_class):
    with Listener(('127.0.0.1', 0), authkey=AUTHKEY) as listener:
        print('listening on', listener.address, flush=True)
        with listener.accept() as conn:
            print('connection accepted from', listener.last_accepted)
            conn.send([2.25, None, 'junk', float] if with_class else [2.25, None, 'junk'])
            conn.send_bytes(b'hello')
            conn.send_bytes(array('i', [42, 1729]))


def connect(port):
    with Client(('127.0.0.1', port), authkey=AUTHKEY) as conn:
        print(conn.recv())
        print(conn.recv_bytes())
        arr = array('i', [0, 0, 0, 0, 0])
        print(conn.recv_bytes_into(arr))
        print(arr)


if __name__ == '__main__':
    if sys.argv[1] == 'server':
        serve(sys.argv[2:] == ['with-class'])
    else:
        connect(int(sys.argv[2]))
