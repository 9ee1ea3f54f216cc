#!/usr/bin/env python3
"""Build assets/genes/ from DATA/genes (and the celltypist 1.7.1 wheel's ortholog table).

Run from the repo root:  python3 scripts/make_assets.py --data DATA
Outputs are deterministic gzip files (mtime 0), so re-running gives identical bytes.
"""
import argparse, csv, glob, gzip, io, json, os, subprocess, sys, tempfile, zipfile

def write_gz(path, text):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        g.write(text.encode("utf-8"))
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    print(f"{path}: {os.path.getsize(path)/1e6:.2f} MB")

def clean(s):
    return " ".join(s.replace("\t", " ").split())

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="the data directory (with genes/)")
    ap.add_argument("--out", default="assets/genes")
    a = ap.parse_args()
    g = os.path.join(a.data, "genes")
    os.makedirs(a.out, exist_ok=True)

    human = json.load(open(os.path.join(g, "human_refseq_gene_summaries.json")))
    mouse_own = json.load(open(os.path.join(g, "mouse_refseq_gene_summaries.json")))
    mouse_all = json.load(open(os.path.join(g, "mouse_summaries_with_human_orthologs.json")))

    # orthologs: celltypist 1.7.1 Ensembl105_Human2Mouse_Genes.csv (human,mouse)
    tmp = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "celltypist==1.7.1"], check=True)
    whl = glob.glob(os.path.join(tmp, "celltypist-1.7.1-*.whl"))[0]
    with zipfile.ZipFile(whl) as z:
        rows = z.read("celltypist/data/samples/Ensembl105_Human2Mouse_Genes.csv").decode().splitlines()
    pairs = []
    for line in rows:
        h, _, m = line.partition(",")
        if h and m:
            pairs.append((h.strip(), m.strip()))
    mouse_to_human = {}
    for h, m in pairs:
        mouse_to_human.setdefault(m, h)

    out = ["symbol\tsource\ttext"]
    for s in sorted(human):
        out.append(f"{s}\thuman\t{clean(human[s])}")
    write_gz(os.path.join(a.out, "human_summaries.tsv.gz"), "\n".join(out) + "\n")

    out = ["symbol\tsource\ttext"]
    for s in sorted(mouse_all):
        if s in mouse_own:
            src = "mouse"
        else:
            h = mouse_to_human.get(s)
            # the mouse file took the human ortholog's summary; name it when we can
            src = f"human-ortholog:{h}" if h and human.get(h) == mouse_all[s] else "human-ortholog"
        out.append(f"{s}\t{src}\t{clean(mouse_all[s])}")
    write_gz(os.path.join(a.out, "mouse_summaries.tsv.gz"), "\n".join(out) + "\n")

    out = ["human\tmouse"] + [f"{h}\t{m}" for h, m in pairs]
    write_gz(os.path.join(a.out, "orthologs_human_mouse.tsv.gz"), "\n".join(out) + "\n")

    # gene info: symbol, full name, aliases (|), Ensembl ids (|)
    out = ["symbol\tname\taliases\tensembl"]
    with open(os.path.join(g, "human_gene_info_orgHsEgDb.tsv")) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            out.append("\t".join([r["symbol"], clean(r["gene_name"] or ""), r["aliases"] or "", r["ensembl_ids"] or ""]))
    write_gz(os.path.join(a.out, "human_gene_info.tsv.gz"), "\n".join(out) + "\n")

    out = ["symbol\tname\taliases\tensembl"]
    with open(os.path.join(g, "mouse_gene_info_ncbi2019.tsv")) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            ens = [x.split(":", 1)[1] for x in (r["dbXrefs"] or "").split("|") if x.startswith("Ensembl:")]
            syn = "" if r["Synonyms"] == "-" else r["Synonyms"]
            out.append("\t".join([r["Symbol"], clean(r["description"] or ""), syn, "|".join(ens)]))
    write_gz(os.path.join(a.out, "mouse_gene_info.tsv.gz"), "\n".join(out) + "\n")

    with open(os.path.join(g, "human_alias_to_symbol.tsv")) as f:
        write_gz(os.path.join(a.out, "human_alias_to_symbol.tsv.gz"), f.read())

if __name__ == "__main__":
    main()
