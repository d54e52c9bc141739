"""A real Python multiprocessing.connection peer for mp's interop tests.

usage: py_connection_peer.py listen  <tcp|unix> <address> <authkey|-> 
       py_connection_peer.py connect <tcp|unix> <address> <authkey|->
  address: a port (tcp, on 127.0.0.1; 0 for any) or a path (unix; a leading @
  means the abstract namespace). authkey '-' means none.
A connecting peer first prints CONNECTING. Either way it sends b"hello from python", expects a message back and prints
GOT <hex of it>; an AuthenticationError prints AUTH_FAILED <message> and exits 3.
"""
import sys
from multiprocessing.connection import Client, Listener
from multiprocessing import AuthenticationError


def parse(family, address):
    if family == "tcp":
        return ("127.0.0.1", int(address))
    return "\0" + address[1:] if address.startswith("@") else address


def converse(conn):
    conn.send_bytes(b"hello from python")
    reply = conn.recv_bytes()
    print("GOT", reply.hex(), flush=True)
    conn.send_bytes(reply[::-1])
    conn.close()


def main():
    role, family, address, key = sys.argv[1:5]
    authkey = None if key == "-" else key.encode()
    try:
        if role == "listen":
            with Listener(parse(family, address), authkey=authkey) as listener:
                bound = listener.address
                print("LISTENING", bound[1] if family == "tcp" else address, flush=True)
                with listener.accept() as conn:
                    converse(conn)
        else:
            print("CONNECTING", flush=True)
            converse(Client(parse(family, address), authkey=authkey))
    except AuthenticationError as e:
        print("AUTH_FAILED", e, flush=True)
        sys.exit(3)


main()
