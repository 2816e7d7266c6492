"""A throw-away PKI for the TLS tests, made with the openssl command.

make_pki(directory) writes, and returns the paths of:
  ca.pem / ca.key              the CA that signs the server and client certificates
  server.pem / server.key      server certificate (CN=glockd-test-server, SAN
                               localhost, 127.0.0.1, ::1), signed by ca
  client.pem / client.key      client certificate (CN=client-one), signed by ca
  client2.pem / client2.key    another client (CN=client-two), signed by ca
  other_ca.pem                 an unrelated CA
  other_client.pem / .key      a client certificate signed by other_ca
  revoked.pem / revoked.key    a client (CN=revoked-client) signed by ca, and
  crl.pem                      a CRL from ca that revokes it
  server2.pem / server2.key    a second server certificate (CN=glockd-test-server-2),
                               signed by ca, for reload tests
  weak.pem / weak.key          a self-signed RSA-1024 certificate (refused by
                               OpenSSL 3's default security level)

EC P-256 keys keep the set quick to make (well under a second); pass
rsa_bits=2048 for RSA keys instead (the bench's handshake cost).
"""
import os
import subprocess

OPENSSL = "openssl"


def _run(args, cwd):
    subprocess.run([OPENSSL] + args, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _key(name, cwd, rsa_bits):
    if rsa_bits:
        _run(["genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{rsa_bits}",
              "-out", name], cwd)
    else:
        _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-out", name], cwd)


def _ca(stem, cn, cwd, rsa_bits):
    _key(f"{stem}.key", cwd, rsa_bits)
    _run(["req", "-x509", "-new", "-key", f"{stem}.key", "-sha256", "-days", "30",
          "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", f"{stem}.pem"], cwd)


def _leaf(stem, cn, ca, cwd, rsa_bits, server):
    _key(f"{stem}.key", cwd, rsa_bits)
    _run(["req", "-new", "-key", f"{stem}.key", "-subj", f"/CN={cn}", "-out", f"{stem}.csr"],
         cwd)
    ext = f"{stem}.ext"
    with open(os.path.join(cwd, ext), "w") as f:
        f.write("basicConstraints=CA:FALSE\n")
        if server:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
            f.write("extendedKeyUsage=serverAuth\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    _run(["x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
          "-CAcreateserial", "-sha256", "-days", "30", "-extfile", ext,
          "-out", f"{stem}.pem"], cwd)


def _crl(ca, revoke, cwd):
    """A CRL signed by `ca` that revokes the certificate `revoke`.pem."""
    db = os.path.join(cwd, f"{ca}-db")
    os.makedirs(db, exist_ok=True)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "crlnumber"), "w") as f:
        f.write("01\n")
    conf = os.path.join(db, "ca.cnf")
    with open(conf, "w") as f:
        f.write(f"""[ca]
default_ca = test
[test]
database = {db}/index.txt
crlnumber = {db}/crlnumber
certificate = {cwd}/{ca}.pem
private_key = {cwd}/{ca}.key
default_md = sha256
default_crl_days = 30
""")
    _run(["ca", "-config", conf, "-revoke", f"{revoke}.pem"], cwd)
    _run(["ca", "-config", conf, "-gencrl", "-out", "crl.pem"], cwd)


def make_pki(directory, rsa_bits=0):
    os.makedirs(directory, exist_ok=True)
    _ca("ca", "glockd test CA", directory, rsa_bits)
    _ca("other_ca", "some other CA", directory, rsa_bits)
    _leaf("server", "glockd-test-server", "ca", directory, rsa_bits, True)
    _leaf("server2", "glockd-test-server-2", "ca", directory, rsa_bits, True)
    _leaf("client", "client-one", "ca", directory, rsa_bits, False)
    _leaf("client2", "client-two", "ca", directory, rsa_bits, False)
    _leaf("revoked", "revoked-client", "ca", directory, rsa_bits, False)
    _leaf("other_client", "client-elsewhere", "other_ca", directory, rsa_bits, False)
    _crl("ca", "revoked", directory)
    _run(["req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", "weak.key",
          "-sha256", "-days", "30", "-subj", "/CN=weak-1024", "-out", "weak.pem"], directory)
    names = ["ca", "other_ca", "server", "server2", "client", "client2", "revoked",
             "other_client", "weak"]
    paths = {}
    for n in names:
        paths[n] = os.path.join(directory, f"{n}.pem")
        paths[n + "_key"] = os.path.join(directory, f"{n}.key")
    paths["crl"] = os.path.join(directory, "crl.pem")
    return paths


if __name__ == "__main__":
    import sys
    import tempfile
    import time
    d = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="glockd-pki-")
    t = time.monotonic()
    p = make_pki(d)
    print(f"{d}: {len(p)} files in {time.monotonic() - t:.2f} s")
