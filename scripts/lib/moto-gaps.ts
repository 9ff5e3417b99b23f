/**
 * A pass-through HTTP proxy in front of moto_server that answers the one AWS call moto 5.2 lacks and a job
 * needs: Auto Scaling `DescribeInstanceRefreshes` (moto answers it with an HTML page). It answers "no
 * instance refresh", which is the truth for the demo's fleet. Every other request goes to moto unchanged.
 */
import { createServer, request, type Server } from 'node:http';

const NO_REFRESHES =
  '<DescribeInstanceRefreshesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">' +
  '<DescribeInstanceRefreshesResult><InstanceRefreshes/></DescribeInstanceRefreshesResult>' +
  '<ResponseMetadata><RequestId>moto-gap</RequestId></ResponseMetadata></DescribeInstanceRefreshesResponse>';

export interface MotoGaps {
  endpoint: string;
  close(): Promise<void>;
}

export async function startMotoGaps(motoEndpoint: string): Promise<MotoGaps> {
  const target = new URL(motoEndpoint);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && body.toString('utf8', 0, 200).includes('Action=DescribeInstanceRefreshes')) {
        res.writeHead(200, { 'content-type': 'text/xml' }).end(NO_REFRESHES);
        return;
      }
      const upstream = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', (error) => res.writeHead(502).end(String(error)));
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
