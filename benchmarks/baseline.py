"""The system Vigil replaces, faithfully naive: one consumer, one message at a time, the model
run eagerly in-process at batch 1, and the database upsert and the event push done inline.

    python -m benchmarks.baseline --bootstrap HOST:PORT --topic livestream.audio --count N

Same message format, same decoding (``handlers.audio_io``), same verdict row and event as
``vigil run audio``, so the two can be compared on identical inputs.
"""

from __future__ import annotations

import argparse
import base64
import json
import sqlite3
import time
from datetime import datetime, timezone

import torch
from confluent_kafka import Consumer, Producer

from handlers.audio_io import ClipDecoder
from modelzoo import audio_classifier
from orchestrator.clock import iso_utc
from orchestrator.db.schema import INDEXES, SCHEMA
from orchestrator.db.stores import upsert_sql

COLUMNS = ("clip_id", "stream_id", "language", "model", "model_version", "score", "label",
           "threshold", "scored_at")


def run(*, bootstrap: str, topic: str, output_topic: str, group: str, database: str,
        model: torch.nn.Module, model_name: str, count: int, threshold: float = 0.5,
        device: str = "cpu") -> None:
    """Consume ``count`` clips and score them one by one."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    connection = sqlite3.connect(database)
    connection.executescript(SCHEMA + INDEXES)
    decoder = ClipDecoder(sample_rate=audio_classifier.SAMPLE_RATE_HZ,
                          clip_samples=audio_classifier.CLIP_SAMPLES)
    consumer.subscribe([topic])
    print("ready", flush=True)  # model loaded, subscribed: the benchmark produces now
    done = 0
    try:
        while done < count:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            clip = json.loads(message.value())
            waveform = decoder.decode(base64.b64decode(clip["audio_b64"]))
            with torch.inference_mode():
                score = float(model(waveform.unsqueeze(0).to(device))[0])
            verdict = {**{k: v for k, v in clip.items() if k != "audio_b64"},
                       "model": model_name, "model_version": "1.0", "score": score,
                       "label": "nsfw" if score >= threshold else "safe",
                       "threshold": threshold, "scored_at": iso_utc()}
            connection.execute(upsert_sql("audio_verdicts"),
                               tuple(verdict.get(c) for c in COLUMNS))
            connection.commit()
            producer.produce(output_topic, json.dumps(verdict).encode(), message.key())
            producer.flush(30)
            consumer.commit(message, asynchronous=False)
            done += 1
    finally:
        consumer.close()
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="livestream.audio")
    parser.add_argument("--output-topic", default="moderation.verdicts")
    parser.add_argument("--group", default="baseline")
    parser.add_argument("--database", default="baseline.db")
    parser.add_argument("--size", default="base", choices=sorted(audio_classifier.SIZES))
    parser.add_argument("--seed", type=int, required=True, help="the archive's weight seed")
    parser.add_argument("--model-name", default="audio_nsfw_bench")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = audio_classifier.from_size(args.size, seed=args.seed).eval().to(args.device)
    started = time.monotonic()
    run(bootstrap=args.bootstrap, topic=args.topic, output_topic=args.output_topic,
        group=args.group, database=args.database, model=model, model_name=args.model_name,
        count=args.count, device=args.device)
    print(f"baseline: {args.count} clips in {time.monotonic() - started:.1f} s at "
          f"{datetime.now(timezone.utc):%H:%M:%S}", flush=True)


if __name__ == "__main__":
    main()
