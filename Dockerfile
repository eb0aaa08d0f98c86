# roadnet images, from one build context: the API (CPU, small) and the GPU worker.
#   docker build --target api -t roadnet-api .
#   docker build --target gpu-worker -t roadnet-gpu-worker .
# docker-compose.yml builds both; see the README, "Running at scale". Neither image has torch.

# ---- the sources both images install ----
FROM scratch AS source
WORKDIR /src
COPY pyproject.toml README.md ./
COPY roadnet roadnet
COPY models models
COPY training training
COPY worker worker
COPY service service

# ---- the API (and a CPU worker, if one is wanted: `roadnet worker`) ----
FROM python:3.11-slim-bookworm AS api
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ROADNET_DATA_DIR=/data
WORKDIR /src
COPY --from=source /src ./
RUN pip install --no-cache-dir . \
 && useradd --uid 1000 --create-home roadnet && mkdir /data && chown roadnet /data
USER roadnet
WORKDIR /home/roadnet
EXPOSE 8000
CMD ["roadnet", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]

# ---- the GPU worker: CUDA 12 and cuDNN 9 from NVIDIA's runtime image, onnxruntime-gpu swapped in ----
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS gpu-worker
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ROADNET_DATA_DIR=/data PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
WORKDIR /src
COPY --from=source /src ./
# onnxruntime and onnxruntime-gpu write the same package folder: uninstall one, then install the other
# (README, "GPU inference"). The worker then picks TensorRT, CUDA or CPU, whichever ONNX Runtime offers.
RUN pip install --no-cache-dir . \
 && pip uninstall -y onnxruntime \
 && pip install --no-cache-dir onnxruntime-gpu \
 && (userdel --remove ubuntu 2>/dev/null || true) \
 && useradd --uid 1000 --create-home roadnet && mkdir /data && chown roadnet /data
USER roadnet
WORKDIR /home/roadnet
CMD ["roadnet", "worker", "--hostname", "gpu@%h"]
