import sys, time, numpy as np, faiss
sys.path.insert(0, "/work/main/benchmarks")
from latent_storage import synthetic, fit, unit, recall
faiss.omp_set_num_threads(2)
N = int(sys.argv[1]); specs = sys.argv[2:]
rng = np.random.default_rng(0)
idx = faiss.read_index("/tmp/frw/idx/all-minilm-l6-v2_Flat.index")
real = unit(idx.reconstruct_n(0, idx.ntotal).astype(np.float32))
mean, scale = fit(real)
data = synthetic(N, mean, scale, N // 50, 1.0, rng)
picks = rng.integers(0, N, 1000)
q = unit(data[picks] + 0.5 * rng.standard_normal((1000, scale.shape[0])).astype(np.float32) @ scale)
flat = faiss.IndexFlatIP(data.shape[1]); flat.add(data); _, truth = flat.search(q, 5)
train = data[rng.choice(N, min(N, 65536), replace=False)]
for s in specs:
    spec, probes = s.split("@")
    t = time.time()
    ix = faiss.index_factory(data.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    ix.train(train); ix.add(data)
    b = len(faiss.serialize_index(ix)) / N
    for p in probes.split(","):
        faiss.extract_index_ivf(ix).nprobe = int(p)
        if "Refine" in spec or "RFlat" in spec:
            ps = faiss.IndexRefineSearchParameters(k_factor=float(sys.argv[0] and 10))
        t1 = time.time(); _, rows = ix.search(q, 5); ms = (time.time() - t1)
        print(f"{spec} nprobe {p}: bytes {b:.1f} build {t1 - t:.0f}s search {ms:.2f}s recall5@5 {recall(rows, truth)[0]:.3f}", flush=True)
