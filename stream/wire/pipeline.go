package wire

import (
	"runtime"
	"sync"
)

// blockPipe is an adaptive FrameWriter's pipeline when it compresses on
// more than one goroutine: Flush hands each frame, with the mode the
// chooser picked for it, to compressor goroutines and to one sender
// goroutine that writes the frames in stream order. So compression (on
// several cores), the checksum and the connection's writes (TLS
// encryption included) overlap, as compression=zstd's own parallel encoder
// does: with one goroutine, zstd blocks cost their CPU between the
// connection's writes and lost to S2 on a CPU-bound 1 Gbit/s link.
//
// Memory is bounded: workers+2 jobs cycle through free, each a frame and
// room for its compressed form (about 3.3 MiB with 4 workers and 256 KiB
// frames), plus the zstd encoders' state. The chooser still measures at the connection: the sender
// reports each frame's write to it. A frame's mode is picked when it is
// handed over, so at an epoch's edge up to a queue's worth of frames
// carry the previous decision; the chooser starts the epoch after them.
type blockPipe struct {
	work  chan *frameJob // to the compressors
	order chan *frameJob // to the sender, in stream order
	free  chan *frameJob // back to Flush, for the next frame
	wg    sync.WaitGroup
	once  sync.Once
}

// frameJob is one frame on its way: data, the chosen mode, and the frame
// to send once compressed.
type frameJob struct {
	buf   []byte // header space + data
	enc   []byte // header space + compressed data (scratch)
	mode  int
	frame []byte // what to send: buf, or a prefix of enc
	typ   byte
	done  chan struct{} // the compressor is finished with it
}

// pipeWorkers is the default number of compressor goroutines.
func pipeWorkers() int { return min(4, runtime.GOMAXPROCS(0)) }

func newFrameJob(frameSize, encSize int) *frameJob {
	return &frameJob{buf: make([]byte, headerSize, headerSize+frameSize), enc: make([]byte, headerSize, headerSize+encSize),
		done: make(chan struct{}, 1)}
}

// startPipe starts workers compressors and the sender. The caller owns
// the first job (returned) to fill.
func (fw *FrameWriter) startPipe(workers, encSize int) *frameJob {
	depth := workers + 1
	p := &blockPipe{work: make(chan *frameJob, depth), order: make(chan *frameJob, depth), free: make(chan *frameJob, depth+1)}
	for range depth + 1 {
		p.free <- newFrameJob(fw.size, encSize)
	}
	fw.pipe = p
	p.wg.Add(workers + 1)
	for range workers {
		go func() {
			defer p.wg.Done()
			for j := range p.work {
				j.frame, j.typ = fw.encode(j.mode, j.buf, j.enc)
				j.done <- struct{}{}
			}
		}()
	}
	go func() {
		defer p.wg.Done()
		for j := range p.order {
			<-j.done
			// After a failed write the rest is only drained, so that
			// Flush never waits for a buffer that does not come back.
			if fw.failed() == nil {
				if err := fw.send(j.frame, j.typ, int64(len(j.buf)-headerSize), j.mode); err != nil {
					fw.fail(err)
				}
			}
			j.buf = j.buf[:headerSize]
			p.free <- j
		}
	}()
	return <-p.free
}

// submit hands the filled job on and returns the next one to fill.
func (p *blockPipe) submit(j *frameJob) *frameJob {
	p.order <- j
	p.work <- j
	return <-p.free
}

// stop ends the goroutines once every handed-on frame has been sent (or
// dropped after a failure) and waits for them. It is idempotent.
func (p *blockPipe) stop() {
	p.once.Do(func() {
		close(p.work)
		close(p.order)
		p.wg.Wait()
	})
}
